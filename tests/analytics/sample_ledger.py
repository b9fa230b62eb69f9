"""A small constructed ledger whose every report figure is worked out by hand in EXPECTED.

Window: [2026-11-01 00:00, 2026-11-03 00:00) UTC. Prices per million tokens: alpha 3/15, beta 0.5/1.5,
gamma 1/2 (input/output); each attempt's cost is its tokens at those prices.

run r1 (team platform, priority_based), 2026-11-01:
  t1 review   alpha ok   1.0M in 0.5M out  $10.50  100 ms  01:00:00
  t2 review   alpha ok   2.0M / 1.0M       $21.00  200 ms  02:00:00
  t3 review   gamma timeout                $0      300 ms  03:00:00   (then a retry on gamma)
              gamma unavailable            $0       50 ms  03:00:01   (then a failover to beta)
              beta  ok   1.0M / 1.0M       $2.00   400 ms  03:00:02
  t4 summary  beta  ok   4.0M / 2.0M       $5.00   500 ms  23:59:59   <- last second of Nov 1
run r2 (team search, cost_based), 2026-11-02:
  t1 review   beta  ok   1.0M / 0.5M       $1.25   600 ms  00:00:00   <- first second of Nov 2
  t2 review   beta  rate_limited           $0       10 ms  05:00:00   (then a failover to alpha)
              alpha ok   3.0M / 1.0M       $24.00  700 ms  05:00:01
  t3 summary  alpha ok   0.1M / 0.1M       $1.80   800 ms  06:00:00
outside the window: alpha $1000 at 2026-10-31 23:59:59.999 and at 2026-11-03 00:00:00 (until is exclusive).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert

from analytics import QuotaLimit
from ledger import AttemptRecord, Ledger, NewTask, ProviderEvent, RouteDecision
from providers import Price, TokenUsage

SINCE = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = datetime(2026, 11, 3, tzinfo=UTC)
PRICES = {
    "alpha": Price(input=3.0, output=15.0),
    "beta": Price(input=0.5, output=1.5),
    "gamma": Price(input=1.0, output=2.0),
}
MODELS = {"alpha": "a-large", "beta": "b-small", "gamma": "g-1"}
M = 1_000_000


def at(day: int, hh: int, mm: int = 0, ss: int = 0, us: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hh, mm, ss, us, tzinfo=UTC)


# run, task, type, attempt, provider, outcome, tokens in, tokens out, latency ms, started
ATTEMPTS: list[tuple[str, str, str, int, str, str, int, int, float, datetime]] = [
    ("r1", "t1", "review", 1, "alpha", "success", 1 * M, M // 2, 100, at(1, 1)),
    ("r1", "t2", "review", 1, "alpha", "success", 2 * M, 1 * M, 200, at(1, 2)),
    ("r1", "t3", "review", 1, "gamma", "timeout", 0, 0, 300, at(1, 3)),
    ("r1", "t3", "review", 2, "gamma", "unavailable", 0, 0, 50, at(1, 3, 0, 1)),
    ("r1", "t3", "review", 3, "beta", "success", 1 * M, 1 * M, 400, at(1, 3, 0, 2)),
    ("r1", "t4", "summary", 1, "beta", "success", 4 * M, 2 * M, 500, at(1, 23, 59, 59)),
    ("r2", "t1", "review", 1, "beta", "success", 1 * M, M // 2, 600, at(2, 0)),
    ("r2", "t2", "review", 1, "beta", "rate_limited", 0, 0, 10, at(2, 5)),
    ("r2", "t2", "review", 2, "alpha", "success", 3 * M, 1 * M, 700, at(2, 5, 0, 1)),
    ("r2", "t3", "summary", 1, "alpha", "success", M // 10, M // 10, 800, at(2, 6)),
    ("r0", "t9", "review", 1, "alpha", "success", 200 * M, 0, 5, at(31, 23, 59, 59, 999_999, month=10)),
    ("r3", "t9", "review", 1, "alpha", "success", 200 * M, 0, 5, at(3, 0)),
]
RUNS = {"r0": ("platform", "priority_based"), "r1": ("platform", "priority_based")}
RUNS |= {"r2": ("search", "cost_based"), "r3": ("search", "cost_based")}

# provider, kind, at
EVENTS = [
    ("beta", "circuit.opened", at(31, 23, month=10)),
    ("gamma", "circuit.opened", at(1, 3, 0, 5)),
    ("gamma", "circuit.half_open", at(1, 3, 0, 35)),
    ("gamma", "circuit.closed", at(1, 3, 1, 5)),
    ("beta", "circuit.closed", at(1, 0, 10)),
    ("beta", "quota.blocked", at(2, 5)),
    ("alpha", "circuit.opened", at(2, 23)),
]

LIMITS = (
    QuotaLimit("alpha", None, "requests_per_day", "requests", 86400, 5),
    QuotaLimit("beta", None, "tokens_per_hour", "tokens", 3600, 2 * M),
)


def cost_of(provider: str, tokens_in: int, tokens_out: int) -> float:
    price = PRICES[provider]
    return (tokens_in * price.input + tokens_out * price.output) / M


def fill(engine: Engine, attempts: list[tuple[Any, ...]] | None = None, events: bool = True) -> Ledger:
    """Write the sample (or the given attempts) through the Ledger API, as the router and flows do."""
    ledger = Ledger(engine)
    rows = ATTEMPTS if attempts is None else attempts
    run_ids: dict[str, str] = {}
    for name in dict.fromkeys(r[0] for r in rows):
        team, strategy = RUNS.get(name, ("platform", "priority_based"))
        tasks = {r[1]: r[2] for r in rows if r[0] == name}
        new = [NewTask(task_id=t, task_type=k, priority="normal", team=team) for t, k in tasks.items()]
        run_ids[name], _ = ledger.start_or_resume_run(
            batch_name=name, batch_hash=name, team=team, strategy=strategy, tasks=new
        )
    by_task: dict[tuple[str, str], list[AttemptRecord]] = {}
    for name, task_id, task_type, attempt, provider, outcome, tin, tout, latency, started in rows:
        team, strategy = RUNS.get(name, ("platform", "priority_based"))
        record = AttemptRecord(
            run_id=run_ids[name],
            task_id=task_id,
            provider_id=provider,
            task_type=task_type,
            attempt=attempt,
            outcome=outcome,
            started_at=started,
            finished_at=started,
            model=MODELS.get(provider),
            team=team,
            strategy=strategy,
            error_type=None if outcome == "success" else "test",
            usage=TokenUsage(input=tin, output=tout),
            cost_usd=cost_of(provider, tin, tout) if provider in PRICES else 0.0,
            latency_ms=latency,
        )
        by_task.setdefault((name, task_id), []).append(record)
    for (name, task_id), records in by_task.items():
        last = records[-1]
        order = list(dict.fromkeys(r.provider_id for r in records))
        ok = last.outcome == "success"
        ledger.finish_task(
            run_ids[name],
            task_id,
            status="completed" if ok else "failed",
            provider_id=last.provider_id if ok else None,
            output="done" if ok else None,
            decision=RouteDecision(
                strategy=last.strategy or "", candidates=tuple(order), order=tuple(order), chosen=order[0]
            ),
            attempts=records,
        )
    if events:
        with engine.begin() as conn:
            conn.execute(
                insert(ProviderEvent),
                [{"provider_id": p, "subscription": None, "kind": k, "detail": {}, "at": t} for p, k, t in EVENTS],
            )
    return ledger
