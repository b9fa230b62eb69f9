"""Helpers for tests that run `switchboard` as a user does: a subprocess with its own home and ledger."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ledger import AttemptRecord, Ledger, NewTask, RouteDecision

ROOT = Path(__file__).resolve().parents[2]


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Ephemeral Prefect, and a home, ledger and Prefect home of the test's own."""
    base = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SWITCHBOARD_PROVIDERS")}
    return {
        **base,
        "SWITCHBOARD_PREFECT": "ephemeral",
        "SWITCHBOARD_HOME": str(tmp_path / "home"),
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **extra,
    }


def one_error_line(stderr: str) -> str:
    """The single `error: ...` line a command printed on stderr (fails the test if there is more)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    return lines[0]


def switchboard(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT
    )


def record_run(
    ledger: Ledger,
    name: str,
    tasks: dict[str, list[tuple[str, str]]],
    *,
    outputs: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> str:
    """A finished run written through the ledger's own API, as a batch would leave it.

    `tasks` maps each task id to its attempts as (provider, outcome); a task whose last outcome is `success`
    completed on that provider, any other failed.
    """
    run_id, _ = ledger.start_or_resume_run(
        batch_name=name,
        batch_hash=name,
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id=t, task_type="code_review", priority="normal") for t in tasks],
        fresh=True,
    )
    start = datetime.now(UTC)
    for task_id, attempts in tasks.items():
        records = [
            AttemptRecord(
                run_id=run_id,
                task_id=task_id,
                provider_id=provider,
                task_type="code_review",
                attempt=n,
                outcome=outcome,
                started_at=start + timedelta(milliseconds=10 * n),
                finished_at=start + timedelta(milliseconds=10 * n + 5),
                cost_usd=0.0001 if outcome == "success" else 0.0,
                latency_ms=5.0,
            )
            for n, (provider, outcome) in enumerate(attempts, start=1)
        ]
        done = bool(attempts) and attempts[-1][1] == "success"
        ledger.finish_task(
            run_id,
            task_id,
            status="completed" if done else "failed",
            provider_id=attempts[-1][0] if done else None,
            output=(outputs or {}).get(task_id),
            error=(errors or {}).get(task_id),
            decision=RouteDecision(
                strategy="priority_based", order=tuple(p for p, _ in attempts), chosen=attempts[-1][0]
            ),
            attempts=records,
        )
    ledger.finish_run(run_id, "completed" if all(a and a[-1][1] == "success" for a in tasks.values()) else "failed")
    return run_id
