"""`switchboard simulate` as a user runs it, and its tables; the replay itself is tested in tests/planning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from cli.simulate import quota_table
from ledger import Ledger
from tests.planning.test_replay import RECORDED, record_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def recorded(ledger_url: str) -> Ledger:
    ledger = Ledger(url=ledger_url)
    record_run(ledger)
    return ledger


@pytest.mark.slow
def test_simulate_command_prints_one_json_object(recorded: Ledger, ledger_url: str, tmp_path: Path) -> None:
    providers = tmp_path / "same.json"
    providers.write_text(json.dumps(RECORDED))
    env = dict(os.environ, SWITCHBOARD_DATABASE_URL=ledger_url)
    done = subprocess.run(
        [sys.executable, "-m", "cli", "simulate", "--since", "1h", "--providers", str(providers), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["predicted"]["provider_mix"] == result["actual"]["provider_mix"]
    bad = subprocess.run(
        [sys.executable, "-m", "cli", "simulate", "--since", "yesterday", "--providers", str(providers)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_quota_events_are_shown_recorded_beside_predicted() -> None:
    recorded = [
        {"provider": "cheap", "kind": "quota.forecast_crossed", "at": "2026-11-01T10:03:00+00:00", "limit": "rph"}
    ]
    predicted = [
        {"provider": "cheap", "kind": "quota.forecast_crossed", "at": "2026-11-01T10:04:00+00:00", "limit": "rph"},
        {"provider": "cheap", "kind": "quota.blocked", "at": "2026-11-01T10:05:00+00:00", "reason": "rph"},
    ]
    console = Console(record=True, width=200)
    console.print(quota_table(recorded, predicted))
    lines = console.export_text().splitlines()
    line = next(row for row in lines if "quota.forecast_crossed" in row)
    assert "cheap" in line and "2026-11-01 10:03:00" in line and "2026-11-01 10:04:00" in line
    blocked = next(row for row in lines if "quota.blocked" in row)
    assert "none" in blocked and "2026-11-01 10:05:00" in blocked  # never recorded, predicted once


@pytest.mark.slow
def test_simulate_command_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    providers = tmp_path / "same.json"
    providers.write_text(json.dumps(RECORDED))
    ledger_db = tmp_path / "ledger.db"
    Ledger(url=f"sqlite:///{ledger_db}").close()
    garbage = tmp_path / "garbage.db"
    garbage.write_text("not SQLite " * 200)
    missing = tmp_path / "no" / "such" / "x.db"

    def simulate_cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli", "simulate", "--providers", str(providers), *args],
            capture_output=True,
            text=True,
            env=dict(os.environ, SWITCHBOARD_DATABASE_URL=f"sqlite:///{db}"),
            cwd=ROOT,
            timeout=120,
        )

    huge = simulate_cli(ledger_db, "--since", "99999999d")
    assert huge.returncode == 2 and "--since: '99999999d' reaches back before the year 1" in huge.stderr
    absent = simulate_cli(missing)
    assert absent.returncode == 2 and f"no ledger at {missing}" in " ".join(absent.stderr.split())
    assert not missing.parent.exists()
    broken = simulate_cli(garbage)
    assert broken.returncode == 2 and "file is not a database" in " ".join(broken.stderr.split())
    for done in (huge, absent, broken):
        assert "Traceback" not in done.stderr and done.stdout == ""
