"""What must hold after any fault, checked on the ledger itself (tests/faults use it after every one).

- each task ended completed, failed with a reason, skipped because a dependency failed, or cancelled (only in
  a run that was interrupted); none is left pending;
- provider calls made equal attempt rows (rows that record no call are marked and left out: the response cache's
  hits, whose outcome is `success` like any answer's);
- the run's cost equals the sum of its attempts', and a task's cost the sum of its own;
- no provider was called while its circuit was open (no attempt starts between a provider's `circuit_opened`
  event and the `circuit_half_open` after it);
- no provider was called while its quota was exhausted: no attempt starts between a `quota.blocked` event and
  the first of its `reset_at`, a `quota.reset` of the same scope, or a reset by hand (`provider.reset`). A block
  of the whole provider (no subscription) covers every subscription; a subscription's covers only its own.
  Blocks of earlier runs count too (a router restores them from the ledger). Another process's block reaches
  a router with the shared-limits sync's delay, so runs sharing limits are not judged by this.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger import RESET_EVENT, AttemptRecord, Ledger, ProviderEventRecord, RunStatus, TaskStatus
from routing import QUOTA_BLOCKED, QUOTA_RESET, QuotaBlockedDetail

# How far back blocks are looked for (routing.restore's BLOCK_MEMORY: a router restores blocks that old).
BLOCK_MEMORY = timedelta(days=31)
# The router's block ends on its monotonic clock, `reset_at` on the wall clock computed from it: allow the
# two a few milliseconds of disagreement at the end of a block.
CLOCK_SLACK = timedelta(milliseconds=5)


@dataclass(frozen=True)
class Checked:
    statuses: Counter[str]
    calls_recorded: int
    cost_usd: float


def check_invariants(ledger: Ledger, run_id: str, *, provider_calls: int | None = None) -> Checked:
    """Assert the invariants for one run; `provider_calls`: how many calls the providers saw, when known."""
    run = ledger.get_run(run_id)
    assert run is not None, f"run {run_id} is not in the ledger"
    states = ledger.task_states(run_id)
    attempts = ledger.attempts(run_id)
    for state in states.values():
        assert state.status != TaskStatus.PENDING, f"{state.task_id} left pending"
        if state.status == TaskStatus.FAILED:
            assert state.error, f"{state.task_id} failed without a reason"
        if state.status == TaskStatus.SKIPPED:
            assert state.error and "upstream" in state.error, f"{state.task_id} skipped without its upstream"
        if state.status == TaskStatus.CANCELLED:
            assert run.status == RunStatus.INTERRUPTED, f"{state.task_id} cancelled in a run that was not interrupted"
        if state.status == TaskStatus.COMPLETED:
            assert (
                any(a.task_id == state.task_id and a.outcome == "success" for a in attempts) or state.output is not None
            )
    calls = [a for a in attempts if not a.cache_hit]  # a cache hit is recorded with no call made
    if provider_calls is not None:
        assert len(calls) == provider_calls, f"{provider_calls} provider calls but {len(calls)} attempt rows"
    keys = Counter((a.task_id, a.attempt) for a in attempts)
    assert all(n == 1 for n in keys.values()), f"attempt numbers repeat: {[k for k, n in keys.items() if n > 1]}"
    total = sum(a.cost_usd for a in attempts)
    assert abs(ledger.run_cost(run_id) - total) < 1e-9
    _no_call_while_open(ledger, attempts, run.started_at)
    _no_call_while_exhausted(ledger, attempts, run.started_at)
    return Checked(Counter(str(s.status) for s in states.values()), len(calls), total)


def _no_call_while_open(ledger: Ledger, attempts: list, since: object) -> None:
    events = ledger.events_since(since, kinds=["circuit.opened", "circuit.half_open", "circuit.closed"])  # type: ignore[arg-type]
    for event in events:
        if event.kind != "circuit.opened":
            continue
        reopened = next(
            (
                e.at
                for e in events
                if e.provider_id == event.provider_id and e.at > event.at and e.kind != "circuit.opened"
            ),
            None,
        )
        for a in attempts:
            if (
                a.provider_id == event.provider_id
                and a.started_at > event.at
                and (reopened is None or a.started_at < reopened)
            ):
                raise AssertionError(
                    f"{a.task_id} attempt {a.attempt} called {a.provider_id} while its circuit was open"
                )


def _no_call_while_exhausted(ledger: Ledger, attempts: list[AttemptRecord], run_started: datetime) -> None:
    events = ledger.events_since(run_started - BLOCK_MEMORY, kinds=[QUOTA_BLOCKED, QUOTA_RESET, RESET_EVENT])
    for block in (e for e in events if e.kind == QUOTA_BLOCKED):
        start, end = block.at, _block_end(block, events)
        for a in attempts:
            covered = block.subscription is None or a.subscription == block.subscription
            if a.provider_id == block.provider_id and covered and start < a.started_at < end:
                scope = block.provider_id + (f"/{block.subscription}" if block.subscription else "")
                raise AssertionError(
                    f"{a.task_id} attempt {a.attempt} called {a.provider_id} at {a.started_at:%H:%M:%S.%f} while"
                    f" {scope}'s quota was exhausted ({start:%H:%M:%S.%f} to {end:%H:%M:%S.%f})"
                )


def _block_end(block: ProviderEventRecord, events: list[ProviderEventRecord]) -> datetime:
    """When a `quota.blocked` stopped keeping calls out: its reset time, or the reset that came first."""
    reset_at = QuotaBlockedDetail.model_validate(block.detail or {}).reset_at
    ends = [reset_at - CLOCK_SLACK] if reset_at is not None else []
    for e in events:
        if e.provider_id != block.provider_id or e.at <= block.at:
            continue
        if (e.kind == QUOTA_RESET and e.subscription == block.subscription) or (
            e.kind == RESET_EVENT and e.subscription in (None, block.subscription)
        ):
            ends.append(e.at)
    return min(ends, default=datetime.max.replace(tzinfo=block.at.tzinfo))
