"""Runs at once: the same spec twice (the second neither resumes the first's run nor calls its tasks), and two
different specs on a fresh PostgreSQL ledger (both create the schema at the same moment; both complete)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _running_run(db: Path, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    row = conn.execute("select run_id from runs where status = 'running'").fetchone()
                except sqlite3.OperationalError:  # tables not created yet
                    row = None
            if row:
                return str(row[0])
        time.sleep(0.2)
    raise AssertionError("the first run never started")


def test_the_same_spec_run_twice_at_once_is_refused_not_run_twice(tmp_path: Path) -> None:
    spec = tmp_path / "slow.yaml"
    spec.write_text("name: slow\ntasks:\n  - {id: only, type: code_review, prompt: take your time}\n")
    providers = tmp_path / "providers.yaml"
    providers.write_text("providers:\n  slow: {type: local_mock, latency_ms: 6000}\n")
    db = tmp_path / "ledger.db"
    env = dict(
        os.environ,
        SWITCHBOARD_HOME=str(tmp_path / "home"),
        SWITCHBOARD_DATABASE_URL=f"sqlite:///{db}",
        SWITCHBOARD_PREFECT="ephemeral",
        PREFECT_HOME=str(tmp_path / "prefect"),
    )
    command = [sys.executable, "-m", "cli", "run", str(spec), "--providers", str(providers)]
    first = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_id = _running_run(db)
        second = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"run {run_id} of this spec is in progress in another process" in second.stderr
        assert "--fresh" in second.stderr
        _, first_err = first.communicate(timeout=180)
        assert first.returncode == 0, first_err
    finally:
        if first.poll() is None:
            first.kill()
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from runs").fetchone() == (1,)
        assert conn.execute("select task_id, attempt from provider_usage").fetchall() == [("only", 1)]


def test_two_runs_of_different_specs_started_at_once_on_a_fresh_postgresql_ledger_both_complete(
    postgres_ledger_url: str, tmp_path: Path
) -> None:
    url = postgres_ledger_url
    providers = tmp_path / "providers.yaml"
    providers.write_text("providers:\n  mock: {type: local_mock, latency_ms: 5}\n")
    procs = []
    try:
        for name in ("first", "second"):
            spec = tmp_path / f"{name}.yaml"
            tasks = "".join(f"  - {{id: {name}-{i}, type: code_review, prompt: review {i}}}\n" for i in range(3))
            spec.write_text(f"name: {name}\ntasks:\n{tasks}")
            env = dict(
                os.environ,
                SWITCHBOARD_HOME=str(tmp_path / f"home-{name}"),
                SWITCHBOARD_DATABASE_URL=url,
                SWITCHBOARD_PREFECT="ephemeral",
                PREFECT_HOME=str(tmp_path / f"prefect-{name}"),
            )
            command = [sys.executable, "-m", "cli", "run", str(spec), "--providers", str(providers), "--json"]
            procs.append(
                subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        results = [p.communicate(timeout=240) for p in procs]
        for proc, (out, err) in zip(procs, results, strict=True):
            assert proc.returncode == 0, err[-3000:]
            assert json.loads(out)["totals"]["completed"] == 3
        ledger = create_engine(url)
        with ledger.connect() as conn:
            names = conn.execute(text("select batch_name, status from runs order by batch_name")).all()
        ledger.dispose()
        assert [tuple(r) for r in names] == [("first", "completed"), ("second", "completed")]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
