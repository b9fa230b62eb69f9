"""Summaries that scale: a 10,000-task run fits on one screen, `--json` keeps every task, `show` filters."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from batches import DIGEST_ABOVE
from ledger import AttemptRecord, Ledger, NewTask, TaskOutcome, TaskStatus
from tests.cli.cli_kit import cli_env, switchboard

SCREEN = 40


def _big_run(ledger: Ledger, size: int, seed: int = 7) -> tuple[str, dict[str, str]]:
    """A finished run of `size` tasks written in bulk: most complete on `primary`, some after a failover to
    `backup`, some fail on both, and each failed task's two dependents are skipped. Returns (run id, statuses)."""
    rng = random.Random(seed)
    ids = [f"task-{n:05d}" for n in range(size)]
    types = ("code_review", "bug_fix")
    run_id, _ = ledger.start_or_resume_run(
        batch_name="big",
        batch_hash="big",
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id=t, task_type=types[n % 2], priority="normal") for n, t in enumerate(ids)],
        fresh=True,
    )
    start = datetime.now(UTC)
    attempts: list[AttemptRecord] = []
    outcomes: list[TaskOutcome] = []
    statuses: dict[str, str] = {}

    def attempt(task: str, n: int, provider: str, outcome: str) -> None:
        attempts.append(
            AttemptRecord(
                run_id=run_id,
                task_id=task,
                provider_id=provider,
                task_type="code_review",
                attempt=n,
                outcome=outcome,
                started_at=start + timedelta(milliseconds=n * 100),
                finished_at=start + timedelta(milliseconds=n * 100 + 50),
                cost_usd=0.001 if outcome == "success" else 0.0,
            )
        )

    skip_next = 0
    for task in ids:
        if skip_next:
            skip_next -= 1
            statuses[task] = "skipped"
            outcomes.append(TaskOutcome(task_id=task, status=TaskStatus.SKIPPED, error="skipped: upstream failed"))
            continue
        roll = rng.random()
        if roll < 0.003:
            attempt(task, 1, "primary", "unavailable")
            attempt(task, 2, "backup", "timeout")
            statuses[task] = "failed"
            error = "all providers failed: primary unavailable, backup timeout"
            outcomes.append(TaskOutcome(task_id=task, status=TaskStatus.FAILED, error=error))
            skip_next = 2
        elif roll < 0.1:
            attempt(task, 1, "primary", "unavailable")
            attempt(task, 2, "backup", "success")
            statuses[task] = "completed"
            outcomes.append(TaskOutcome(task_id=task, status=TaskStatus.COMPLETED, provider_id="backup", output="ok"))
        else:
            attempt(task, 1, "primary", "success")
            statuses[task] = "completed"
            outcomes.append(TaskOutcome(task_id=task, status=TaskStatus.COMPLETED, provider_id="primary", output="ok"))
    ledger.record_attempts(attempts)
    ledger.finish_tasks(run_id, outcomes)
    ledger.finish_run(run_id, "failed")
    return run_id, statuses


@pytest.fixture
def big(tmp_path: Path) -> tuple[str, dict[str, str], dict[str, str]]:
    env = cli_env(tmp_path)
    ledger = Ledger(url=env["SWITCHBOARD_DATABASE_URL"])
    run_id, statuses = _big_run(ledger, 10_000)
    ledger.close()
    return run_id, statuses, env


def test_a_10000_task_run_is_shown_on_one_screen_and_its_json_holds_every_task(
    big: tuple[str, dict[str, str], dict[str, str]],
) -> None:
    run_id, statuses, env = big
    failed = sorted(t for t, s in statuses.items() if s == "failed")
    skipped = sorted(t for t, s in statuses.items() if s == "skipped")
    shown = switchboard("show", run_id, env=env)
    assert shown.returncode == 0, shown.stderr[-2000:]
    lines = shown.stdout.splitlines()
    assert len(lines) <= SCREEN, shown.stdout
    text = shown.stdout
    assert "10,000 tasks shown grouped" in text
    # The failed tasks come first by name, ten of them, then how many more and the command listing them.
    listed = [line.split()[0] for line in lines if line.startswith("  task-")]
    assert listed == failed[:10]
    more = len(failed) + len(skipped) - 10
    assert f"… and {more:,} more: switchboard show {run_id} --status failed --status skipped --all" in text
    assert f"every task: switchboard show {run_id} --all" in text

    whole = switchboard("show", run_id, "--json", env=env)
    data = json.loads(whole.stdout)
    assert len(data["tasks"]) == 10_000
    assert {t["id"]: t["status"] for t in data["tasks"]} == statuses
    by_group: dict[tuple[str, str], int] = {}
    for t in data["tasks"]:
        provider = t["provider"] or (t["attempts"][-1]["provider"] if t["attempts"] else "-")
        by_group[t["status"], provider] = by_group.get((t["status"], provider), 0) + 1
    # Grouped by status and provider: each group's row counts exactly its tasks.
    rows = [[cell.strip() for cell in line.split("│")[1:4]] for line in lines if line.startswith("│")]
    assert sorted(rows) == sorted([status, provider, f"{n:,}"] for (status, provider), n in by_group.items())


def test_show_filters_by_status_provider_and_type(big: tuple[str, dict[str, str], dict[str, str]]) -> None:
    run_id, statuses, env = big
    failed = sorted(t for t, s in statuses.items() if s == "failed")
    only_failed = json.loads(switchboard("show", run_id, "--status", "failed", "--json", env=env).stdout)
    assert [t["id"] for t in only_failed["tasks"]] == failed
    assert only_failed["totals"]["completed"] == sum(1 for s in statuses.values() if s == "completed")

    both = json.loads(
        switchboard("show", run_id, "--status", "failed", "--status", "skipped", "--json", env=env).stdout
    )
    assert {t["status"] for t in both["tasks"]} == {"failed", "skipped"}

    backup_bug_fixes = json.loads(
        switchboard("show", run_id, "--provider", "backup", "--type", "bug_fix", "--json", env=env).stdout
    )
    assert backup_bug_fixes["tasks"]
    for t in backup_bug_fixes["tasks"]:
        assert t["type"] == "bug_fix" and "backup" in {a["provider"] for a in t["attempts"]}

    # A handful of tasks is a table of them, one row each, whatever the run's size.
    few = switchboard("show", run_id, "--status", "failed", "--type", "code_review", env=env)
    rows = [t for t in failed if int(t.split("-")[1]) % 2 == 0]
    assert len(rows) <= DIGEST_ABOVE
    assert all(t in few.stdout for t in rows) and "shown grouped" not in few.stdout

    # --all: one row per task even for many.
    every = switchboard("show", run_id, "--status", "skipped", "--all", env=env)
    assert all(t in every.stdout for t in statuses if statuses[t] == "skipped")

    bad = switchboard("show", run_id, "--status", "done", env=env)
    assert bad.returncode == 2 and "--status" in bad.stderr


@pytest.mark.slow
def test_switchboard_run_of_10000_tasks_ends_with_one_screen_and_show_json_holds_them_all(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    spec = tmp_path / "ten-thousand.yaml"
    spec.write_text(
        "name: ten-thousand\ntasks:\n"
        + "".join(f"  - {{id: t{n}, type: code_review, prompt: part {n}}}\n" for n in range(10_000))
    )
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        "providers:\n"
        "  flaky: {type: local_mock, priority: 1, latency_ms: 0, failure_rate: 0.2, fail_with: unavailable}\n"
        "  worse: {type: local_mock, priority: 2, latency_ms: 0, failure_rate: 0.05, fail_with: timeout}\n"
        "failover: {retry_max_s: 0}\n"
    )
    done = switchboard("run", str(spec), "--providers", str(providers), env=env, timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]  # some tasks failed on both providers
    lines = done.stdout.splitlines()
    assert len(lines) <= SCREEN, done.stdout
    run_id = lines[0].split()[1]
    assert "10,000 tasks shown grouped" in lines[0]
    assert f"switchboard show {run_id} --status failed --status skipped --all" in done.stdout
    data = json.loads(switchboard("show", run_id, "--json", env=env).stdout)
    assert len(data["tasks"]) == 10_000
    failed = [t["id"] for t in data["tasks"] if t["status"] == "failed"]
    assert failed and all(f"  {t} " in done.stdout for t in failed[:10])
