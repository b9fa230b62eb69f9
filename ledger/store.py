"""Recording and reading runs, tasks and attempts: the source of truth for what was done and what it cost."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, case, func, insert, select, update
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ledger.db import create_ledger_engine
from ledger.models import ProviderEvent, ProviderRow, ProviderUsage, Run, TaskRow
from ledger.records import (
    AttemptRecord,
    CachedAnswer,
    HistoryRecord,
    NewTask,
    ProviderEventRecord,
    ProviderRecord,
    RouteDecision,
    RunRecord,
    RunStatus,
    TaskOutcome,
    TaskState,
    TaskStatus,
    UsagePoint,
)
from providers import NOT_ABOUT_THE_PROVIDER, TokenUsage, restored_or_none, storable, utc_now

TERMINAL_TASK_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED})
# Core tables for bulk reads: rows straight from the cursor, no ORM identity map.
_USAGE = ProviderUsage.__table__
_TASKS = TaskRow.__table__
_TASKS_WITHOUT_DECISION = [c for c in _TASKS.c if c.name != "decision"]


class RunInProgress(Exception):
    """The spec's unfinished run is being run by another live process right now."""

    def __init__(self, run_id: str, owner: str | None, heartbeat_at: datetime | None) -> None:
        self.run_id, self.owner, self.heartbeat_at = run_id, owner, heartbeat_at
        seen = f", last seen {heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if heartbeat_at else ""
        super().__init__(f"run {run_id} of this spec is in progress in another process ({owner}{seen})")


def new_run_id(now: datetime | None = None) -> str:
    now = now or utc_now()
    return f"r{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class Ledger:
    """Thread-safe: each call opens its own short session on a shared engine."""

    def __init__(self, engine: Engine | None = None, *, url: str | None = None) -> None:
        self.engine = engine or create_ledger_engine(url)
        # The URL it was opened with (password included): the key of its spool (ledger.spool).
        self.url = url or self.engine.url.render_as_string(hide_password=False)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # What opening it replayed from the spool (ledger.opening), for the caller to say in one line.
        self.replayed: Any = None

    def close(self) -> None:
        self.engine.dispose()

    # --- runs -------------------------------------------------------------------------------------

    def start_or_resume_run(
        self,
        *,
        batch_name: str,
        batch_hash: str,
        team: str | None,
        strategy: str | None,
        tasks: Sequence[NewTask],
        fresh: bool = False,
        owner: str | None = None,
        owner_active: Callable[[str, datetime | None], bool] | None = None,
    ) -> tuple[str, bool]:
        """Resume the newest unfinished run of this exact spec, else start one; returns (run_id, resumed).

        A run is unfinished until every task completed. Resuming puts its non-completed tasks back to
        `pending`; completed tasks keep their outputs and are never executed again. The run is claimed for
        `owner`; a run still `running` under another owner that `owner_active(owner, heartbeat_at)` says is
        alive is not resumed (RunInProgress): both would call its unfinished tasks.
        """
        now = utc_now()
        with self._sessions.begin() as session:
            previous = None
            if not fresh:
                previous = session.scalars(
                    select(Run)
                    .where(Run.batch_name == batch_name, Run.batch_hash == batch_hash)
                    .order_by(Run.started_at.desc())
                    .limit(1)
                ).first()
            if previous is not None and previous.status != RunStatus.COMPLETED:
                claimed_from = (previous.owner, previous.heartbeat_at)
                if (
                    previous.status == RunStatus.RUNNING
                    and previous.owner not in (None, owner)
                    and owner_active is not None
                    and owner_active(previous.owner, previous.heartbeat_at)
                ):
                    raise RunInProgress(previous.run_id, previous.owner, previous.heartbeat_at)
                # Compare-and-set: of two processes resuming at once, the one whose claim lands second finds
                # the owner changed under it and backs off.
                claim = (
                    update(Run)
                    .where(
                        Run.run_id == previous.run_id,
                        Run.owner.is_(None) if claimed_from[0] is None else Run.owner == claimed_from[0],
                        Run.heartbeat_at.is_(None) if claimed_from[1] is None else Run.heartbeat_at == claimed_from[1],
                    )
                    .values(
                        status=RunStatus.RUNNING,
                        finished_at=None,
                        owner=owner,
                        heartbeat_at=now,
                        **({"strategy": strategy} if strategy else {}),
                    )
                    .execution_options(synchronize_session=False)
                )
                if session.execute(claim).rowcount != 1:
                    session.rollback()
                    current = self.get_run(previous.run_id)
                    raise RunInProgress(previous.run_id, current.owner if current else None, now)
                session.execute(
                    update(TaskRow)
                    .where(TaskRow.run_id == previous.run_id, TaskRow.status != TaskStatus.COMPLETED)
                    .values(status=TaskStatus.PENDING, error=None, provider_id=None, updated_at=now)
                )
                return previous.run_id, True
            run_id = new_run_id(now)
            session.add(
                Run(
                    run_id=run_id,
                    batch_name=batch_name,
                    batch_hash=batch_hash,
                    team=team,
                    status=RunStatus.RUNNING,
                    strategy=strategy,
                    started_at=now,
                    owner=owner,
                    heartbeat_at=now,
                )
            )
            session.flush()
            # One executemany of plain rows: ORM objects for a 1,000-task batch cost tens of milliseconds.
            session.execute(
                insert(TaskRow),
                [
                    {
                        "run_id": run_id,
                        "task_id": t.task_id,
                        "task_type": t.task_type,
                        "priority": t.priority,
                        "team": t.team,
                        "status": TaskStatus.PENDING,
                        "position": i,
                        "updated_at": now,
                    }
                    for i, t in enumerate(tasks)
                ],
            )
            return run_id, False

    def open_standing_run(self, run_id: str, *, batch_name: str, strategy: str | None = None) -> None:
        """Create a run that collects tasks as they come (the HTTP API's run of the day) unless it exists; two
        processes creating it at once both succeed."""
        with self._sessions() as session:
            if session.get(Run, run_id) is not None:
                return
        try:
            with self._sessions.begin() as session:
                now = utc_now()
                session.add(
                    Run(
                        run_id=run_id,
                        batch_name=batch_name,
                        batch_hash=batch_name,
                        team=None,
                        status=RunStatus.RUNNING,
                        strategy=strategy,
                        started_at=now,
                    )
                )
        except IntegrityError:
            pass  # another process created it first

    def add_task(self, run_id: str, task: NewTask) -> bool:
        """Register one more pending task in an existing run; False when the run already has that task id."""
        try:
            with self._sessions.begin() as session:
                position = session.scalar(select(func.count()).where(TaskRow.run_id == run_id)) or 0
                session.add(
                    TaskRow(
                        run_id=run_id,
                        task_id=task.task_id,
                        task_type=task.task_type,
                        priority=task.priority,
                        team=task.team,
                        status=TaskStatus.PENDING,
                        position=position,
                        updated_at=utc_now(),
                    )
                )
        except IntegrityError:
            return False
        return True

    def renew_run_claim(self, run_id: str, owner: str) -> bool:
        """Say `owner` is still running `run_id`; False when another process has taken the run over."""
        with self._sessions.begin() as session:
            renewed = session.execute(
                update(Run)
                .where(Run.run_id == run_id, Run.owner == owner)
                .values(heartbeat_at=utc_now())
                .execution_options(synchronize_session=False)
            )
            return renewed.rowcount == 1

    def set_flow_run_id(self, run_id: str, flow_run_id: str | None) -> None:
        with self._sessions.begin() as session:
            session.execute(update(Run).where(Run.run_id == run_id).values(flow_run_id=flow_run_id))

    def finish_run(self, run_id: str, status: RunStatus) -> None:
        with self._sessions.begin() as session:
            session.execute(update(Run).where(Run.run_id == run_id).values(status=status, finished_at=utc_now()))

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._sessions() as session:
            row = session.get(Run, run_id)
            return None if row is None else _run_record(row)

    def run_of_flow_run(self, flow_run_id: str) -> RunRecord | None:
        """The run a Prefect flow run ran (its newest, if several flow runs resumed it), or None."""
        with self._sessions() as session:
            row = session.scalars(
                select(Run).where(Run.flow_run_id == flow_run_id).order_by(Run.started_at.desc()).limit(1)
            ).first()
            return None if row is None else _run_record(row)

    def find_run(self, prefix: str, *, shown: int = 5) -> RunRecord | None:
        """A run by its full id or a unique prefix of it; None when nothing matches.

        A prefix several runs share raises LookupError naming the newest `shown` of them, so the caller can say
        "ambiguous" rather than "not found".
        """
        exact = self.get_run(prefix)
        if exact is not None:
            return exact
        matching = select(Run.run_id).where(Run.run_id.startswith(prefix, autoescape=True))
        with self._sessions() as session:
            ids = session.scalars(matching.order_by(Run.started_at.desc()).limit(shown + 1)).all()
            total = session.scalar(select(func.count()).select_from(matching.subquery())) if len(ids) > shown else 0
        if len(ids) <= 1:
            return self.get_run(ids[0]) if ids else None
        total = total or len(ids)
        listed = ", ".join(ids[:shown]) + (f", … ({total - shown} more)" if total > shown else "")
        raise LookupError(f"run id prefix {prefix!r} is ambiguous: {total} runs match ({listed})")

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        with self._sessions() as session:
            rows = session.scalars(select(Run).order_by(Run.started_at.desc()).limit(limit)).all()
            return [_run_record(r) for r in rows]

    # --- tasks ------------------------------------------------------------------------------------

    def task_states(
        self, run_id: str, task_ids: Collection[str] | None = None, *, decisions: bool = True
    ) -> dict[str, TaskState]:
        """The run's tasks (or only `task_ids`), in spec order; without `decisions` their routing decisions are
        not read (left None): a 1,000-task run's summary need not parse 1,000 of them."""
        query = (select(_TASKS) if decisions else select(*_TASKS_WITHOUT_DECISION)).where(_TASKS.c.run_id == run_id)
        if task_ids is not None:
            query = query.where(_TASKS.c.task_id.in_(task_ids))
        with self._sessions() as session:
            return {r.task_id: _task_state(r) for r in session.execute(query.order_by(_TASKS.c.position))}

    def task_status_counts(self, run_id: str) -> dict[TaskStatus, int]:
        """status -> how many of the run's tasks have it: what progress displays poll, without the outputs."""
        with self._sessions() as session:
            rows = session.execute(
                select(TaskRow.status, func.count()).where(TaskRow.run_id == run_id).group_by(TaskRow.status)
            )
            return {TaskStatus(status): int(n) for status, n in rows}

    def task_state(self, run_id: str, task_id: str) -> TaskState | None:
        with self._sessions() as session:
            row = session.get(TaskRow, (run_id, task_id))
            return None if row is None else _task_state(row)

    def finish_tasks(self, run_id: str, outcomes: Iterable[TaskOutcome]) -> None:
        """Set several tasks' final states in one transaction (chunked batches)."""
        with self.engine.begin() as conn:
            update_outcomes(conn, [(run_id, o) for o in outcomes])

    def finish_task(
        self,
        run_id: str,
        task_id: str,
        *,
        status: TaskStatus,
        provider_id: str | None = None,
        output: str | None = None,
        error: str | None = None,
        decision: RouteDecision | None = None,
        attempts: Iterable[AttemptRecord] = (),
    ) -> None:
        """Set a task's final state, committing any attempts not yet recorded in the same transaction."""
        if status not in TERMINAL_TASK_STATUSES:
            raise ValueError(f"not a final task status: {str(status)!r}")
        with self._sessions.begin() as session:
            _add_attempts(session, attempts)
            nul_ok = _nul_ok(session.connection())
            session.execute(
                update(TaskRow)
                .where(TaskRow.run_id == run_id, TaskRow.task_id == task_id)
                .values(
                    status=status,
                    provider_id=provider_id,
                    output=_text(output, nul_ok),
                    error=_text(error, nul_ok),
                    decision=decision,
                    updated_at=utc_now(),
                )
            )

    # --- attempts ---------------------------------------------------------------------------------

    def record_attempts(self, attempts: Iterable[AttemptRecord]) -> None:
        """Commit attempt rows; a row whose idempotency key is already stored is skipped."""
        with self._sessions.begin() as session:
            _add_attempts(session, attempts)

    def attempts(self, run_id: str, task_id: str | None = None) -> list[AttemptRecord]:
        query = select(_USAGE).where(_USAGE.c.run_id == run_id)
        if task_id is not None:
            query = query.where(_USAGE.c.task_id == task_id)
        with self._sessions() as session:
            return [_attempt_record(r) for r in session.execute(query.order_by(_USAGE.c.task_id, _USAGE.c.attempt))]

    def attempts_after(self, run_id: str, after_row: int = 0) -> list[tuple[int, AttemptRecord]]:
        """The run's attempt rows after row number `after_row`, in row order, each with its row number (what a
        follower of a running batch reads every second)."""
        query = select(_USAGE).where(_USAGE.c.run_id == run_id, _USAGE.c.id > after_row).order_by(_USAGE.c.id)
        with self._sessions() as session:
            return [(r.id, _attempt_record(r)) for r in session.execute(query)]

    def last_attempt_numbers(self, run_id: str, task_ids: Collection[str] | None = None) -> dict[str, int]:
        """task_id -> its highest attempt number so far, for the run's tasks (or only `task_ids`)."""
        query = select(ProviderUsage.task_id, func.max(ProviderUsage.attempt)).where(ProviderUsage.run_id == run_id)
        if task_ids is not None:
            query = query.where(ProviderUsage.task_id.in_(task_ids))
        with self._sessions() as session:
            rows = session.execute(query.group_by(ProviderUsage.task_id)).all()
            return {task_id: int(n) for task_id, n in rows}

    def recorded_successes(
        self, run_id: str, task_ids: Collection[str] | None = None
    ) -> dict[str, tuple[str, str | None]]:
        """task_id -> (provider_id, output) for every task of the run (or of `task_ids`) with a successful attempt."""
        query = select(ProviderUsage.task_id, ProviderUsage.provider_id, ProviderUsage.output).where(
            ProviderUsage.run_id == run_id, ProviderUsage.outcome == "success"
        )
        if task_ids is not None:
            query = query.where(ProviderUsage.task_id.in_(task_ids))
        with self._sessions() as session:
            rows = session.execute(query).all()
            return {task_id: (provider_id, restored_or_none(output)) for task_id, provider_id, output in rows}

    def cached_answer(self, key: str, team: str | None, since: datetime) -> CachedAnswer | None:
        """The newest successful attempt with the response cache's `key`, of `team` (None: of no team), finished at
        or after `since`; answers served from the cache are not sources themselves, so an answer's age is always
        counted from the call that produced it. One lookup walks the `cache_key` index."""
        u = ProviderUsage
        query = (
            select(u.run_id, u.task_id, u.attempt, u.provider_id, u.model, u.output, u.cost_usd, u.finished_at)
            .where(
                u.cache_key == key,
                u.outcome == "success",
                u.cache_hit.is_(False),
                u.finished_at >= since,
                u.team.is_(None) if team is None else u.team == team,  # the key has the team too: never across
                u.output.is_not(None),
            )
            .order_by(u.finished_at.desc())
            .limit(1)
        )
        with self._sessions() as session:
            row = session.execute(query).first()
        if row is None:
            return None
        run_id, task_id, attempt, provider_id, model, output, cost, finished_at = row
        text = restored_or_none(output) or ""
        return CachedAnswer(run_id, task_id, attempt, provider_id, restored_or_none(model), text, cost, finished_at)

    def run_cost(self, run_id: str) -> float:
        with self._sessions() as session:
            value = session.scalar(select(func.sum(ProviderUsage.cost_usd)).where(ProviderUsage.run_id == run_id))
            return float(value or 0.0)

    def usage_since(self, since: datetime, provider_ids: Iterable[str] | None = None) -> list[UsagePoint]:
        """Per-attempt (provider, time, tokens, cost at list price, subscription) since `since`, cancelled ones left
        out: rebuilds quota windows (provider and subscription level) after a restart. Limits count usage, so a
        subscription login's calls count at list price, as routing counts them live."""
        query = select(
            ProviderUsage.provider_id,
            ProviderUsage.started_at,
            ProviderUsage.tokens_input
            + ProviderUsage.tokens_output
            + ProviderUsage.tokens_cache_read
            + ProviderUsage.tokens_cache_write,
            func.coalesce(ProviderUsage.list_price_usd, ProviderUsage.cost_usd),
            ProviderUsage.subscription,
        ).where(ProviderUsage.started_at >= since, ProviderUsage.outcome != "cancelled")
        if provider_ids is not None:
            query = query.where(ProviderUsage.provider_id.in_(list(provider_ids)))
        with self._sessions() as session:
            return [
                UsagePoint(p, at, int(tokens or 0), float(cost or 0.0), subscription)
                for p, at, tokens, cost, subscription in session.execute(query)
            ]

    def recent_outcomes(
        self, since: datetime, provider_ids: Iterable[str], outcomes: Collection[str], *, per_provider: int
    ) -> dict[str, list[tuple[str, datetime]]]:
        """provider -> its newest `per_provider` attempts (outcome, finished_at) since `since` whose outcome is
        one of `outcomes`, newest first: what a circuit breaker remembers across runs."""
        recent: dict[str, list[tuple[str, datetime]]] = {}
        with self._sessions() as session:
            for provider_id in provider_ids:  # a handful of providers; each query walks the (provider, time) index
                rows = session.execute(
                    select(ProviderUsage.outcome, ProviderUsage.finished_at)
                    .where(
                        ProviderUsage.provider_id == provider_id,
                        ProviderUsage.started_at >= since,
                        ProviderUsage.outcome.in_(sorted(outcomes)),
                    )
                    .order_by(ProviderUsage.started_at.desc())
                    .limit(per_provider)
                ).all()
                if rows:
                    recent[provider_id] = [(outcome, at) for outcome, at in rows]
        return recent

    def history(self, since: datetime) -> list[HistoryRecord]:
        """Attempts, successes, mean latency and mean success cost per (provider, task type) since `since`."""
        success = case((ProviderUsage.outcome == "success", 1), else_=0)
        query = (
            select(
                ProviderUsage.provider_id,
                ProviderUsage.task_type,
                func.count(),
                func.sum(success),
                func.avg(case((ProviderUsage.outcome == "success", ProviderUsage.latency_ms))),
                func.avg(case((ProviderUsage.outcome == "success", ProviderUsage.cost_usd))),
            )
            # The same attempts the engine scores live: the caller's own faults say nothing about the provider.
            # Nor do cache hits: no provider was called. Nor vendor batch answers: their latency is hours of
            # waiting by choice, and their price the batch's, neither what a live call on the provider gives.
            .where(
                ProviderUsage.started_at >= since,
                ProviderUsage.outcome.not_in(sorted(NOT_ABOUT_THE_PROVIDER)),
                ProviderUsage.cache_hit.is_(False),
                ProviderUsage.vendor_batch_id.is_(None),
            )
            .group_by(ProviderUsage.provider_id, ProviderUsage.task_type)
        )
        with self._sessions() as session:
            return [
                HistoryRecord(
                    provider_id=p,
                    task_type=t,
                    attempts=int(n),
                    successes=int(s or 0),
                    latency_ms=None if lat is None else float(lat),
                    cost_usd=None if cost is None else float(cost),
                )
                for p, t, n, s, lat, cost in session.execute(query)
            ]

    def events_since(self, since: datetime, kinds: Iterable[str] | None = None) -> list[ProviderEventRecord]:
        """Provider events at or after `since` (only of `kinds`, if given), oldest first."""
        query = select(ProviderEvent).where(ProviderEvent.at >= since).order_by(ProviderEvent.at, ProviderEvent.id)
        if kinds is not None:
            query = query.where(ProviderEvent.kind.in_(list(kinds)))
        with self._sessions() as session:
            return [
                ProviderEventRecord(
                    provider_id=e.provider_id, subscription=e.subscription, kind=e.kind, detail=e.detail, at=e.at
                )
                for e in session.scalars(query)
            ]

    def attempts_between(self, since: datetime, until: datetime) -> list[AttemptRecord]:
        """Every attempt started in [since, until), oldest first (what-if replays read the workload from it)."""
        query = (
            select(_USAGE)
            .where(_USAGE.c.started_at >= since, _USAGE.c.started_at < until)
            .order_by(_USAGE.c.started_at, _USAGE.c.id)
        )
        with self._sessions() as session:
            return [_attempt_record(r) for r in session.execute(query)]

    def task_decisions(
        self, run_ids: Iterable[str], *, runs_per_query: int = 500
    ) -> dict[tuple[str, str], tuple[str, RouteDecision | None, str | None]]:
        """(run, task) -> (priority, routing decision, the run's strategy) for every task of these runs."""
        ids = sorted(set(run_ids))
        query = select(TaskRow.run_id, TaskRow.task_id, TaskRow.priority, TaskRow.decision, Run.strategy).join(
            Run, Run.run_id == TaskRow.run_id
        )
        decisions: dict[tuple[str, str], tuple[str, RouteDecision | None, str | None]] = {}
        with self._sessions() as session:
            for start in range(0, len(ids), runs_per_query):  # under the databases' bound-parameter limits
                chunk = ids[start : start + runs_per_query]
                for run_id, task_id, priority, decision, strategy in session.execute(
                    query.where(TaskRow.run_id.in_(chunk))
                ):
                    decisions[(run_id, task_id)] = (priority, decision, strategy)
        return decisions

    def cost_since(self, since: datetime) -> float:
        with self._sessions() as session:
            value = session.scalar(select(func.sum(ProviderUsage.cost_usd)).where(ProviderUsage.started_at >= since))
            return float(value or 0.0)

    # --- providers --------------------------------------------------------------------------------

    def upsert_provider(
        self, provider_id: str, *, type_name: str, priority: int, config: dict[str, Any], capabilities: dict[str, Any]
    ) -> None:
        fields = {
            "type": type_name,
            "priority": priority,
            "config": config,
            "capabilities": capabilities,
            "updated_at": utc_now(),
        }
        upsert = _UPSERT.get(self.engine.dialect.name)
        if upsert is not None:
            # One statement: processes starting together register the same providers without a race.
            statement = upsert(ProviderRow).values(provider_id=provider_id, status="unknown", **fields)
            with self.engine.begin() as conn:
                conn.execute(statement.on_conflict_do_update(index_elements=["provider_id"], set_=fields))
            return
        with self._sessions.begin() as session:
            row = session.get(ProviderRow, provider_id)
            if row is None:
                row = ProviderRow(provider_id=provider_id, status="unknown")
                session.add(row)
            row.type, row.priority, row.config, row.capabilities = type_name, priority, config, capabilities
            row.updated_at = fields["updated_at"]  # type: ignore[assignment]

    def record_provider_health(
        self, provider_id: str, *, status: str, health: dict[str, Any], type_name: str = "unknown", priority: int = 0
    ) -> None:
        """Store the latest health probe of a provider (creating its row if the run never registered it)."""
        with self._sessions.begin() as session:
            row = session.get(ProviderRow, provider_id)
            if row is None:
                row = ProviderRow(provider_id=provider_id, type=type_name, priority=priority, config={})
                session.add(row)
            row.status, row.health, row.updated_at = status, health, utc_now()

    def provider_rows(self) -> list[ProviderRecord]:
        with self._sessions() as session:
            return [
                ProviderRecord(
                    provider_id=r.provider_id,
                    type=r.type,
                    status=r.status,
                    priority=r.priority,
                    config=r.config,
                    capabilities=r.capabilities,
                    health=r.health,
                    updated_at=r.updated_at,
                )
                for r in session.scalars(select(ProviderRow).order_by(ProviderRow.provider_id))
            ]

    def record_provider_event(
        self,
        provider_id: str,
        kind: str,
        detail: dict[str, Any] | None = None,
        subscription: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Store a provider event; `at`: when it happened (default now), which a recorder that runs behind (a
        forwarding thread) must pass so the ledger orders it with the attempts around it."""
        with self._sessions.begin() as session:
            session.add(
                ProviderEvent(
                    provider_id=provider_id, subscription=subscription, kind=kind, detail=detail, at=at or utc_now()
                )
            )


def update_outcomes(conn: Connection, outcomes: Iterable[tuple[str, TaskOutcome]]) -> None:
    """Write tasks' final states (run_id, outcome) with one executemany."""
    rows = _outcome_rows(conn, outcomes)
    if rows:
        conn.execute(_UPDATE_OUTCOME, rows)


def update_outcomes_unless_completed(conn: Connection, outcomes: Iterable[tuple[str, TaskOutcome]]) -> None:
    """As `update_outcomes`, but a task already completed keeps its state: a late row (replayed from the
    spool) never undoes a completion recorded since."""
    rows = _outcome_rows(conn, outcomes)
    if rows:
        conn.execute(_UPDATE_OUTCOME.where(TaskRow.status != TaskStatus.COMPLETED), rows)


def _outcome_rows(conn: Connection, outcomes: Iterable[tuple[str, TaskOutcome]]) -> list[dict[str, Any]]:
    now = utc_now()
    nul_ok = _nul_ok(conn)
    rows = []
    for run_id, o in outcomes:
        if o.status not in TERMINAL_TASK_STATUSES:
            raise ValueError(f"not a final task status: {str(o.status)!r}")
        rows.append(
            {
                "b_run_id": run_id,
                "b_task_id": o.task_id,
                "status": o.status,
                "provider_id": o.provider_id,
                "output": _text(o.output, nul_ok),
                "error": _text(o.error, nul_ok),
                "decision": o.decision,
                "updated_at": now,
            }
        )
    return rows


_UPDATE_OUTCOME = (
    update(TaskRow)
    .where(TaskRow.run_id == bindparam("b_run_id"), TaskRow.task_id == bindparam("b_task_id"))
    .values(
        status=bindparam("status"),
        provider_id=bindparam("provider_id"),
        output=bindparam("output"),
        error=bindparam("error"),
        decision=bindparam("decision"),
        updated_at=bindparam("updated_at"),
    )
)


def _add_attempts(session: Session, attempts: Iterable[AttemptRecord]) -> None:
    insert_attempts(session.connection(), attempts)


def insert_attempts(conn: Connection, attempts: Iterable[AttemptRecord]) -> None:
    """Insert attempt rows in one statement; a row whose idempotency key is already stored is skipped."""
    nul_ok = _nul_ok(conn)
    rows = [_usage_values(a, nul_ok) for a in attempts]
    if not rows:
        return
    statement = _INSERT_IGNORING_DUPLICATES.get(conn.dialect.name)
    if statement is not None:
        conn.execute(statement, rows)
        return
    keys = [r["idempotency_key"] for r in rows]
    stored = set(conn.scalars(select(ProviderUsage.idempotency_key).where(ProviderUsage.idempotency_key.in_(keys))))
    fresh = [r for r in rows if r["idempotency_key"] not in stored]
    if fresh:
        conn.execute(insert(ProviderUsage), fresh)


_UPSERT = {"sqlite": sqlite_dialect.insert, "postgresql": postgresql_dialect.insert}

# Built once: constructing the statement costs about as much as a single-row SQLite commit.
_INSERT_IGNORING_DUPLICATES = {
    "sqlite": sqlite_dialect.insert(ProviderUsage).on_conflict_do_nothing(index_elements=["idempotency_key"]),
    "postgresql": postgresql_dialect.insert(ProviderUsage).on_conflict_do_nothing(index_elements=["idempotency_key"]),
}


def _nul_ok(conn: Connection) -> bool:
    """Whether the database's text columns take NUL (PostgreSQL's do not)."""
    return conn.dialect.name != "postgresql"


def _text(value: str | None, nul_ok: bool) -> str | None:
    """Free text (an answer, an error, a model name a vendor sent) as stored: see providers.text."""
    return None if value is None else storable(value, nul_ok=nul_ok)


def _usage_values(a: AttemptRecord, nul_ok: bool = True) -> dict[str, Any]:
    return {
        "run_id": a.run_id,
        "task_id": a.task_id,
        "provider_id": a.provider_id,
        "subscription": a.subscription,
        "model": _text(a.model, nul_ok),
        "task_type": a.task_type,
        "team": a.team,
        "strategy": a.strategy,
        "attempt": a.attempt,
        "outcome": a.outcome,
        "error_type": _text(a.error_type, nul_ok),
        "error_message": _text(a.error_message, nul_ok),
        "output": _text(a.output, nul_ok),
        "tokens_input": a.usage.input,
        "tokens_output": a.usage.output,
        "tokens_cache_read": a.usage.cache_read,
        "tokens_cache_write": a.usage.cache_write,
        "tokens_reasoning": a.usage.reasoning,
        "cost_usd": a.cost_usd,
        "list_price_usd": a.list_price_usd,
        "latency_ms": a.latency_ms,
        "started_at": a.started_at,
        "finished_at": a.finished_at,
        "idempotency_key": a.idempotency_key,
        "cache_key": a.cache_key,
        "cache_hit": a.cache_hit,
        "cache_source": a.cache_source,
        "cache_saved_usd": a.cache_saved_usd,
        "vendor_batch_id": a.vendor_batch_id,
    }


def _attempt_record(r: Any) -> AttemptRecord:
    """An attempt row (ORM object or Core row) as a record. Rows are ours and already typed by their columns,
    so the record is built without validating again (a run's summary reads thousands of them)."""
    return AttemptRecord.model_construct(
        run_id=r.run_id,
        task_id=r.task_id,
        provider_id=r.provider_id,
        task_type=r.task_type,
        attempt=r.attempt,
        outcome=r.outcome,
        started_at=r.started_at,
        finished_at=r.finished_at,
        subscription=r.subscription,
        model=restored_or_none(r.model),
        team=r.team,
        strategy=r.strategy,
        error_type=restored_or_none(r.error_type),
        error_message=restored_or_none(r.error_message),
        usage=TokenUsage.model_construct(
            input=r.tokens_input,
            output=r.tokens_output,
            cache_read=r.tokens_cache_read,
            cache_write=r.tokens_cache_write,
            reasoning=r.tokens_reasoning,
        ),
        cost_usd=r.cost_usd,
        latency_ms=r.latency_ms,
        output=restored_or_none(r.output),
        cache_key=r.cache_key,
        cache_hit=bool(r.cache_hit),
        cache_source=r.cache_source,
        cache_saved_usd=r.cache_saved_usd,
        list_price_usd=r.list_price_usd,
        vendor_batch_id=r.vendor_batch_id,
    )


def _task_state(r: Any) -> TaskState:
    """A task row (ORM object or Core row) as a record, built without validating again (see _attempt_record)."""
    return TaskState.model_construct(
        run_id=r.run_id,
        task_id=r.task_id,
        task_type=r.task_type,
        priority=r.priority,
        team=r.team,
        status=TaskStatus(r.status),
        provider_id=r.provider_id,
        output=restored_or_none(r.output),
        error=restored_or_none(r.error),
        decision=getattr(r, "decision", None),
        position=r.position,
    )


def _run_record(r: Run) -> RunRecord:
    return RunRecord(
        run_id=r.run_id,
        batch_name=r.batch_name,
        batch_hash=r.batch_hash,
        team=r.team,
        status=r.status,
        flow_run_id=r.flow_run_id,
        strategy=r.strategy,
        started_at=r.started_at,
        finished_at=r.finished_at,
        owner=r.owner,
        heartbeat_at=r.heartbeat_at,
    )
