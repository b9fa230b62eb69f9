"""A run as the CLI's `--json` object (DESIGN.md "CLI contract"), built from the ledger alone.

`RunSummary.model_dump()` is that object, key for key: `switchboard run --json` prints it (with the run's
Prefect UI link), `show --json` too, `runs --json` its `run` and `totals`; the human tables and the run's
Prefect artifacts are drawn from it. A task's `decision` is in it only with `explain`, the run's `ui_url` only
where the CLI added it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from ledger import (
    AttemptRecord,
    Ledger,
    RouteDecision,
    RunStatus,
    TaskState,
    TaskStatus,
    VendorState,
    VendorWait,
    count_failovers,
    count_rotations,
    is_quota_failure,
    pending_rows,
    vendor_requests,
)
from providers import TokenUsage


class _Summary(BaseModel):
    model_config = ConfigDict(frozen=True)


class AttemptSummary(_Summary):
    provider: str
    subscription: str | None = None
    outcome: str
    error_type: str | None = None
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    attempt: int = 1
    model: str | None = None
    tokens: TokenUsage = TokenUsage()
    # At list price, only where that differs from `cost_usd` (a Claude Code login's call, charged 0); in the JSON
    # only then.
    list_price_usd: float | None = None
    # Served from the response cache (provider `cache`, no call made): what that answer cost when it was made,
    # saved now. In the JSON only on cache hits.
    cache_saved_usd: float | None = None
    # Answered (or refused) through a vendor batch API: the vendor's batch id. In the JSON only then.
    vendor_batch_id: str | None = None

    @model_serializer(mode="wrap")
    def _optional_only_when_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for optional in ("list_price_usd", "cache_saved_usd", "vendor_batch_id"):
            if data.get(optional) is None:
                data.pop(optional, None)
        return data

    @property
    def provider_id(self) -> str:
        """The provider, under the ledger's name for it (so ledger.count_failovers reads summaries too)."""
        return self.provider

    @property
    def where(self) -> str:
        """`provider/subscription` (or the provider alone), so moves between a provider's subscriptions show."""
        return f"{self.provider}/{self.subscription}" if self.subscription else self.provider

    @classmethod
    def of(cls, a: AttemptRecord) -> AttemptSummary:
        return cls.model_construct(
            provider=a.provider_id,
            subscription=a.subscription,
            outcome=a.outcome,
            error_type=a.error_type,
            cost_usd=a.cost_usd,
            latency_ms=round(a.latency_ms, 3),
            attempt=a.attempt,
            model=a.model,
            tokens=a.usage,
            list_price_usd=a.list_price_usd,
            cache_saved_usd=(a.cache_saved_usd or 0.0) if a.cache_hit else None,
            vendor_batch_id=a.vendor_batch_id,
        )


class VendorBatchRef(_Summary):
    """The vendor batch a task was sent to (batches.deferred): `state` waiting | done | fell_back | failed."""

    id: str
    provider: str
    state: VendorState
    detail: str | None = None

    @classmethod
    def of(cls, w: VendorWait) -> VendorBatchRef:
        return cls.model_construct(id=w.vendor_batch_id, provider=w.provider_id, state=w.state, detail=w.detail)

    @property
    def waiting(self) -> bool:
        return self.state == VendorState.WAITING


class TaskSummary(_Summary):
    """A task's `provider` is the one that answered (None unless it completed); its `cost_usd` sums all its
    attempts; its `latency_ms` runs from its first attempt's start to its last attempt's end."""

    id: str
    type: str
    status: TaskStatus
    provider: str | None = None
    attempts: list[AttemptSummary] = []
    output: str | None = None
    error: str | None = None
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    decision: RouteDecision | None = None  # in the JSON only when given (`--explain`), null or not
    # The vendor batch it was sent to (the latest, if several); in the JSON only for such a task.
    vendor_batch: VendorBatchRef | None = None

    @property
    def waits_in_vendor_batch(self) -> bool:
        """Sent to a vendor batch and not finished: pending, or cancelled with its run (the next start polls it)."""
        unfinished = self.status in (TaskStatus.PENDING, TaskStatus.CANCELLED)
        return unfinished and self.vendor_batch is not None and self.vendor_batch.waiting

    @model_serializer(mode="wrap")
    def _decision_when_explained(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if "decision" not in self.model_fields_set:
            data.pop("decision", None)
        if data.get("vendor_batch") is None:
            data.pop("vendor_batch", None)
        return data


class RunHeader(_Summary):
    id: str
    name: str
    flow_run_id: str | None = None
    status: RunStatus
    strategy: str | None = None
    team: str | None = None
    started_at: str  # ISO 8601, UTC
    finished_at: str | None = None
    ui_url: str | None = None  # in the JSON only when given (`switchboard run`: the Prefect UI's page)

    @model_serializer(mode="wrap")
    def _ui_url_when_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if "ui_url" not in self.model_fields_set:
            data.pop("ui_url", None)
        return data


class RunTotals(_Summary):
    """Task counts by status, the run's cost, failovers (moves to another provider after a failure), rotations
    (moves to another subscription of the same provider after a failure), attempts."""

    completed: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0
    pending: int = 0
    cost_usd: float = 0.0
    failovers: int = 0
    rotations: int = 0
    # Failed tasks that failed for quota (ledger.quota_failures): last outcome quota_exhausted or rate_limited,
    # or every provider skipped for quota or a rate limit. Part of `failed`, counted apart.
    quota_failures: int = 0
    attempts: int = 0
    # Tasks answered from the response cache, and what those answers cost when they were made (saved now).
    cache_hits: int = 0
    cache_savings_usd: float = 0.0
    # Rows of this run the ledger did not take (it was away), kept in the local spool until they are written
    # (ledger.spool); the counts and cost above leave them out until then.
    spooled_rows: int = 0
    # Tasks waiting in a vendor batch API now (batches.deferred); in the JSON only when there are some.
    waiting_in_vendor_batches: int = 0

    @model_serializer(mode="wrap")
    def _vendor_waits_when_some(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not data.get("waiting_in_vendor_batches"):
            data.pop("waiting_in_vendor_batches", None)
        return data

    def count(self, status: TaskStatus) -> int:
        return int(getattr(self, status.value))


class RunSummary(_Summary):
    run: RunHeader
    tasks: list[TaskSummary]
    totals: RunTotals

    def with_ui_url(self, url: str | None) -> RunSummary:
        """The summary with the run's Prefect UI link (null when there is none), as `switchboard run` prints it."""
        return self.model_copy(update={"run": self.run.model_copy(update={"ui_url": url})})


def _task_summary(
    state: TaskState, attempts: list[AttemptRecord], explain: bool, vendor: VendorWait | None = None
) -> TaskSummary:
    cost = sum(a.cost_usd for a in attempts)
    latency = (
        (max(a.finished_at for a in attempts) - min(a.started_at for a in attempts)).total_seconds() * 1000
        if attempts
        else 0.0
    )
    fields: dict[str, Any] = {
        "id": state.task_id,
        "type": state.task_type,
        "status": state.status,
        "provider": state.provider_id if state.status == TaskStatus.COMPLETED else None,
        "attempts": [AttemptSummary.of(a) for a in attempts],
        "output": state.output,
        "error": state.error,
        "cost_usd": cost,
        "latency_ms": round(latency, 3),
    }
    if explain:
        fields["decision"] = state.decision
    fields["vendor_batch"] = VendorBatchRef.of(vendor) if vendor is not None else None
    return TaskSummary.model_construct(**fields)


def _latest_vendor_requests(ledger: Ledger, run_id: str, task_ids: list[str] | None = None) -> dict[str, VendorWait]:
    """Each task's latest vendor batch request (rows come oldest first, so a later one replaces an earlier one)."""
    return {w.task_id: w for w in vendor_requests(ledger, run_id, task_ids)}


def task_summary(ledger: Ledger, run_id: str, task_id: str) -> TaskSummary | None:
    """One task of a run as its summary shows it, with its decision; None when the ledger has no such task."""
    state = ledger.task_state(run_id, task_id)
    if state is None:
        return None
    attempts = sorted(ledger.attempts(run_id, task_id), key=lambda a: a.attempt)
    vendor = _latest_vendor_requests(ledger, run_id, [task_id]).get(task_id)
    return _task_summary(state, attempts, explain=True, vendor=vendor)


def run_summary(ledger: Ledger, run_id: str, *, explain: bool = False) -> RunSummary:
    """The run's summary; with `explain`, each task's routing decision too. KeyError if the ledger has no such run."""
    run = ledger.get_run(run_id)
    if run is None:
        raise KeyError(run_id)
    by_task: dict[str, list[AttemptRecord]] = defaultdict(list)
    hits: list[AttemptRecord] = []
    for a in ledger.attempts(run_id):
        by_task[a.task_id].append(a)
        if a.cache_hit:
            hits.append(a)
    vendor = _latest_vendor_requests(ledger, run_id)
    tasks: list[TaskSummary] = []
    counts = dict.fromkeys(TaskStatus, 0)
    failovers, rotations, quota_failures, total_cost = 0, 0, 0, 0.0
    # Built without validating again: every value comes from the ledger's typed records (a 1,000-task run's
    # summary is built at the end of every run).
    for state in ledger.task_states(run_id, decisions=explain).values():
        attempts = sorted(by_task.get(state.task_id, []), key=lambda a: a.attempt)
        tasks.append(_task_summary(state, attempts, explain, vendor.get(state.task_id)))
        counts[state.status] += 1
        failovers += count_failovers(attempts)
        rotations += count_rotations(attempts)
        quota_failures += is_quota_failure(state.status, [a.outcome for a in attempts], state.error)
        total_cost += tasks[-1].cost_usd
    header = RunHeader.model_construct(
        id=run.run_id,
        name=run.batch_name,
        flow_run_id=run.flow_run_id,
        status=run.status,
        strategy=run.strategy,
        team=run.team,
        started_at=run.started_at.isoformat(),
        finished_at=run.finished_at.isoformat() if run.finished_at else None,
    )
    totals = RunTotals.model_construct(
        **{status.value: n for status, n in counts.items()},
        cost_usd=total_cost,
        failovers=failovers,
        rotations=rotations,
        quota_failures=quota_failures,
        attempts=sum(len(t.attempts) for t in tasks),
        cache_hits=len(hits),
        cache_savings_usd=sum(a.cache_saved_usd or 0.0 for a in hits),
        spooled_rows=pending_rows(ledger.url, run_id),
        waiting_in_vendor_batches=sum(1 for t in tasks if t.waits_in_vendor_batch),
    )
    return RunSummary.model_construct(run=header, tasks=tasks, totals=totals)


__all__ = [
    "AttemptSummary",
    "RunHeader",
    "RunSummary",
    "RunTotals",
    "TaskSummary",
    "VendorBatchRef",
    "run_summary",
    "task_summary",
]
