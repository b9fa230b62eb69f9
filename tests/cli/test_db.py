"""`switchboard db upgrade|downgrade|current|history` as a user runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import RunStatus, head_revision, open_ledger, schema_history
from tests.cli.cli_kit import ROOT, cli_env, one_error_line, record_run, switchboard


@pytest.fixture
def url(either_database_url: str) -> Iterator[str]:
    yield either_database_url


def _current(env: dict[str, str]) -> str | None:
    result = switchboard("db", "current", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["current"]


def test_up_down_and_where_it_stands(tmp_path: Path, url: str) -> None:
    env = cli_env(tmp_path, SWITCHBOARD_DATABASE_URL=url)
    head = head_revision()
    previous = schema_history()[1].revision
    assert _current(env) is None
    up = switchboard("db", "upgrade", env=env)
    assert up.returncode == 0 and up.stdout.strip().endswith(f"none (no ledger tables) -> {head}")
    assert _current(env) == head
    down = switchboard("db", "downgrade", "-1", env=env)
    assert down.returncode == 0 and down.stdout.strip().endswith(f"{head} -> {previous}")
    shown = switchboard("db", "current", env=env)
    assert shown.stdout.strip().endswith(f"{previous} (head is {head}; `switchboard db upgrade` moves it there)")
    listing = switchboard("db", "history", env=env).stdout.splitlines()
    assert listing[0].startswith(f"{previous} -> {head} (head)")
    assert listing[1].startswith(f"{schema_history()[2].revision} -> {previous} (current)")
    assert switchboard("db", "downgrade", "base", env=env).returncode == 0
    assert _current(env) is None
    assert switchboard("db", "upgrade", previous, env=env).returncode == 0
    assert _current(env) == previous


def test_bad_revision_and_bad_url_exit_2_in_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert switchboard("db", "upgrade", env=env).returncode == 0
    bad = switchboard("db", "downgrade", "nope", env=env)
    assert bad.returncode == 2 and "cannot downgrade to 'nope'" in one_error_line(bad.stderr)
    unreachable = switchboard("db", "current", "--url", "postgresql+psycopg://u:secret@127.0.0.1:1/x", env=env)
    line = one_error_line(unreachable.stderr)
    assert unreachable.returncode == 2 and "cannot open the database" in line and "secret" not in line


def test_looking_at_a_missing_sqlite_ledger_does_not_create_it(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    result = switchboard("db", "current", env=env)
    assert result.returncode == 0 and "no ledger yet" in result.stdout
    assert switchboard("db", "history", env=env).returncode == 0
    down = switchboard("db", "downgrade", "-1", env=env)
    assert down.returncode == 2 and "nothing to downgrade" in down.stderr
    assert not (tmp_path / "ledger.db").exists()


def test_prune_asks_then_keeps_totals_for_the_report(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    ledger = open_ledger(env["SWITCHBOARD_DATABASE_URL"])
    run_id = record_run(
        ledger, "old", {"a": [("flaky", "unavailable"), ("steady", "success")], "b": [("steady", "success")]}
    )
    ledger.finish_run(run_id, RunStatus.COMPLETED)
    future = switchboard("db", "prune", "--before", "2999-01-01", env=env)
    assert future.returncode == 2 and "is in the future" in one_error_line(future.stderr)
    dry = switchboard("db", "prune", "--before", "0d", "--dry-run", "--json", env=env)
    planned = json.loads(dry.stdout)
    assert (planned["runs"], planned["attempts"], planned["dry_run"]) == (1, 3, True)
    declined = subprocess.run(
        [sys.executable, "-m", "cli", "db", "prune", "--before", "0d"],
        input="n\n", capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert declined.returncode == 1 and "nothing pruned" in declined.stdout
    before = json.loads(switchboard("report", "--since", "1d", "--format", "json", env=env).stdout)["totals"]
    done = switchboard("db", "prune", "--before", "0d", "--yes", env=env)
    assert done.returncode == 0 and "1 run(s) that finished before" in done.stdout
    assert "3 attempt(s) ($0.0002)" in done.stdout and "kept as totals" in done.stdout
    assert run_id not in switchboard("runs", env=env).stdout
    after = json.loads(switchboard("report", "--since", "1d", "--format", "json", env=env).stdout)["totals"]
    assert (after["attempts"], after["cost_usd"]) == (before["attempts"], before["cost_usd"]) == (3, 0.0002)
