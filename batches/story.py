"""A routed task's story in one line: where it ran, every attempt with its outcome, the providers left out and
why, failovers and cost. Prefect's run logger carries it to the flow run's Logs tab (flows/batch.py)."""

from __future__ import annotations

from ledger import AttemptRecord, RouteDecision, count_failovers


def _attempt(a: AttemptRecord) -> str:
    where = f"{a.provider_id}/{a.subscription}" if a.subscription else a.provider_id
    if a.outcome == "success":
        return f"{where}: ok"
    detail = f" ({a.error_type})" if a.error_type else ""
    return f"{where}: {a.outcome}{detail}"


def routing_story(
    task_id: str,
    status: str,
    provider_id: str | None,
    attempts: list[AttemptRecord],
    decision: RouteDecision | None,
    error: str | None = None,
) -> str:
    """`review-1 completed on steady · flaky: unavailable (simulated) → steady: ok · 1 failover · $0.000039`."""
    head = f"{task_id} {status}" + (f" on {provider_id}" if provider_id else "")
    parts = [head]
    if attempts:
        parts.append(" → ".join(_attempt(a) for a in attempts))
    if decision is not None and decision.skipped:
        parts.append("left out: " + ", ".join(f"{p} ({why})" for p, why in decision.skipped.items()))
    if decision is not None and decision.preference is not None:
        p = decision.preference
        parts.append(f"preferred {p.provider or p.model}: {p.reason}")
    if decision is not None and decision.cache is not None:
        c = decision.cache
        parts.append(f"cache hit: the answer {c.provider_id} gave {c.run_id}:{c.task_id}, saved ${c.saved_usd:.6f}")
    failovers = count_failovers(attempts)
    if failovers:
        parts.append(f"{failovers} failover" + ("s" if failovers > 1 else ""))
    parts.append(f"${sum(a.cost_usd for a in attempts):.6f}")
    if error and status != "completed":
        parts.append(error)
    return " · ".join(parts)


__all__ = ["routing_story"]
