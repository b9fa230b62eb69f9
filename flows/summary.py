"""A run as the CLI's `--json` object (DESIGN.md "CLI contract"), built from the ledger alone."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from typing import Any

from ledger import AttemptRecord, Ledger


def count_failovers(attempts: list[AttemptRecord]) -> int:
    """Moves to another provider after a failed attempt."""
    return sum(
        1
        for before, after in pairwise(attempts)
        if before.outcome != "success" and after.provider_id != before.provider_id
    )


def count_rotations(attempts: list[AttemptRecord]) -> int:
    """Moves to another subscription of the same provider after a failed attempt (not failovers)."""
    return sum(
        1
        for before, after in pairwise(attempts)
        if before.outcome != "success"
        and after.provider_id == before.provider_id
        and None not in (before.subscription, after.subscription)
        and after.subscription != before.subscription
    )


def attempt_json(a: AttemptRecord) -> dict[str, Any]:
    return {
        "provider": a.provider_id,
        "subscription": a.subscription,
        "outcome": a.outcome,
        "error_type": a.error_type,
        "cost_usd": a.cost_usd,
        "latency_ms": round(a.latency_ms, 3),
        "attempt": a.attempt,
        "model": a.model,
        "tokens": {
            "input": a.usage.input,
            "output": a.usage.output,
            "cache_read": a.usage.cache_read,
            "cache_write": a.usage.cache_write,
            "reasoning": a.usage.reasoning,
        },
    }


def run_summary(ledger: Ledger, run_id: str, *, explain: bool = False) -> dict[str, Any]:
    run = ledger.get_run(run_id)
    if run is None:
        raise KeyError(run_id)
    by_task: dict[str, list[AttemptRecord]] = defaultdict(list)
    for a in ledger.attempts(run_id):
        by_task[a.task_id].append(a)
    tasks, failovers, rotations = [], 0, 0
    counts = {"completed": 0, "failed": 0, "skipped": 0, "cancelled": 0, "pending": 0}
    total_cost = 0.0
    for state in ledger.task_states(run_id).values():
        attempts = sorted(by_task.get(state.task_id, []), key=lambda a: a.attempt)
        cost = sum(a.cost_usd for a in attempts)
        latency = (
            (max(a.finished_at for a in attempts) - min(a.started_at for a in attempts)).total_seconds() * 1000
            if attempts
            else 0.0
        )
        entry: dict[str, Any] = {
            "id": state.task_id,
            "type": state.task_type,
            "status": state.status,
            "provider": state.provider_id if state.status == "completed" else None,
            "attempts": [attempt_json(a) for a in attempts],
            "output": state.output,
            "error": state.error,
            "cost_usd": cost,
            "latency_ms": round(latency, 3),
        }
        if explain:
            entry["decision"] = state.decision
        tasks.append(entry)
        counts[state.status] = counts.get(state.status, 0) + 1
        failovers += count_failovers(attempts)
        rotations += count_rotations(attempts)
        total_cost += cost
    return {
        "run": {
            "id": run.run_id,
            "name": run.batch_name,
            "flow_run_id": run.flow_run_id,
            "status": run.status,
            "strategy": run.strategy,
            "team": run.team,
            "started_at": run.started_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        },
        "tasks": tasks,
        "totals": {
            "completed": counts["completed"],
            "failed": counts["failed"],
            "skipped": counts["skipped"],
            "cancelled": counts["cancelled"],
            "pending": counts["pending"],
            "cost_usd": total_cost,
            "failovers": failovers,
            "rotations": rotations,
            "attempts": sum(len(t["attempts"]) for t in tasks),
        },
    }
