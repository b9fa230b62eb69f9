"""`switchboard cancel` and `watch` where no process runs the batch any more or it has ended: no Prefect needed."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from ledger import AttemptRecord, Ledger, NewTask, TaskStatus
from providers import utc_now
from tests.cli.cli_kit import cli_env, one_error_line, record_run, switchboard

DEAD_PID = 2**22 + 12345  # above Linux's pid_max default: no such process


def _abandoned_run(ledger: Ledger) -> str:
    """A run left `running` by a process that died (kill -9): one task completed, two never finished."""
    run_id, _ = ledger.start_or_resume_run(
        batch_name="abandoned",
        batch_hash="h",
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id=t, task_type="code_review", priority="normal") for t in ("a", "b", "c")],
        owner=f"{socket.gethostname()}:{DEAD_PID}",
    )
    now = utc_now()
    done = AttemptRecord(
        run_id=run_id,
        task_id="a",
        provider_id="mock",
        task_type="code_review",
        attempt=1,
        outcome="success",
        started_at=now,
        finished_at=now,
        cost_usd=0.01,
    )
    ledger.finish_task(run_id, "a", status=TaskStatus.COMPLETED, provider_id="mock", output="ok", attempts=[done])
    return run_id


def test_a_run_whose_process_is_gone_is_ended_cancelled_at_once(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    ledger = Ledger(url=env["SWITCHBOARD_DATABASE_URL"])
    run_id = _abandoned_run(ledger)
    result = switchboard("cancel", run_id, "--json", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "its process was gone; ended cancelled here" in result.stderr
    out = json.loads(result.stdout)
    assert out["run"]["status"] == "cancelled"
    assert {t["id"]: t["status"] for t in out["tasks"]} == {"a": "completed", "b": "cancelled", "c": "cancelled"}
    assert {t["error"] for t in out["tasks"] if t["status"] == "cancelled"} == {
        "cancelled (cancelled with switchboard cancel; the process running it was gone)"
    }
    assert ledger.get_run(run_id).status == "cancelled"  # type: ignore[union-attr]


def test_nothing_to_cancel_in_a_finished_or_unknown_run_exits_1(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    ledger = Ledger(url=env["SWITCHBOARD_DATABASE_URL"])
    finished = record_run(ledger, "done", {"a": [("mock", "success")]})
    result = switchboard("cancel", finished, env=env)
    assert result.returncode == 1
    assert one_error_line(result.stderr) == f"error: run {finished} already ended completed: nothing to cancel"
    unknown = switchboard("cancel", "r19990101-000000-000000", env=env)
    assert unknown.returncode == 1 and "no run 'r19990101-000000-000000' in the ledger" in unknown.stderr


def test_watch_of_a_finished_run_prints_its_summary_and_exits_as_run_would(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    ledger = Ledger(url=env["SWITCHBOARD_DATABASE_URL"])
    done = record_run(ledger, "done", {"a": [("flaky", "unavailable"), ("mock", "success")]})
    failed = record_run(ledger, "broken", {"a": [("mock", "bad_request")]})
    watched = switchboard("watch", done, "--json", env=env)
    assert watched.returncode == 0, watched.stderr[-2000:]
    assert json.loads(watched.stdout)["totals"]["failovers"] == 1
    assert switchboard("show", failed, "--follow", env=env).returncode == 1  # `show --follow` is `watch`
    cancelled = _abandoned_run(ledger)
    assert switchboard("cancel", cancelled, env=env).returncode == 0
    assert switchboard("watch", cancelled, env=env).returncode == 130
    unknown = switchboard("watch", "nothing-like-this", env=env)
    assert unknown.returncode == 1 and "not a flow run id" in unknown.stderr
