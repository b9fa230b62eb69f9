"""The Prefect artifacts a batch run leaves behind: a table of who served what, and its failovers."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from prefect.artifacts import create_table_artifact

from batches import RunSummary
from ledger import TaskStatus


def run_table_rows(summary: RunSummary) -> list[dict[str, Any]]:
    return [
        {
            "task": t.id,
            "status": t.status.value,
            "provider": t.provider or "",
            "attempts": len(t.attempts),
            "tokens_in": sum(a.tokens.input + a.tokens.cache_read + a.tokens.cache_write for a in t.attempts),
            "tokens_out": sum(a.tokens.output for a in t.attempts),
            "cost_usd": round(t.cost_usd, 6),
            "latency_ms": round(t.latency_ms, 1),
        }
        for t in summary.tasks
    ]


def publish_run_table(summary: RunSummary) -> None:
    run_id = summary.run.id
    create_table_artifact(
        table=run_table_rows(summary),
        key=f"switchboard-{run_id.lower()}",
        description=f"Switchboard run {run_id}: who served what at what cost",
    )


@contextmanager
def side_by_side() -> Iterator[Callable[[Callable[[], object]], None]]:
    """Start Prefect API calls on threads as they are handed over, each in a copy of this context (so artifacts
    still belong to the flow run); on exit wait for all and raise the first call's error."""
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="switchboard-artifacts") as pool:
        futures: list[Future[object]] = []
        yield lambda call: futures.append(pool.submit(contextvars.copy_context().run, call))
    for future in futures:
        future.result()


def failover_markdown(summary: RunSummary) -> str:
    """Markdown listing every task that needed more than one attempt, with each failure's reason."""
    run, totals = summary.run, summary.totals
    lines = [
        f"# Run {run.id} · {run.name}",
        "",
        f"{totals.completed} completed, {totals.failed} failed, {totals.skipped} skipped; "
        f"{totals.failovers} failovers, {totals.rotations} rotations between subscriptions; "
        f"cost ${totals.cost_usd:.6f}",
        "",
    ]
    retried = [t for t in summary.tasks if len(t.attempts) > 1 or t.status == TaskStatus.FAILED]
    if not retried:
        lines.append("No failovers or retries: every task succeeded on its first attempt.")
        return "\n".join(lines)
    lines += ["| task | status | attempts (provider: outcome) | reason of the last failure |", "|---|---|---|---|"]
    for t in retried:
        chain = " → ".join(f"{a.where}: {a.outcome}" for a in t.attempts) or "no provider called"
        failures = [a for a in t.attempts if a.outcome != "success"]
        reason = failures[-1].error_type if failures else ""
        detail = (t.error or reason or "").replace("|", "\\|").replace("\n", " ")[:200]
        lines.append(f"| {t.id} | {t.status} | {chain} | {detail} |")
    return "\n".join(lines)


__all__ = ["failover_markdown", "publish_run_table", "run_table_rows", "side_by_side"]
