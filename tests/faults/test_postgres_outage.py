"""PostgreSQL going away mid-run: connections killed (the run goes on, nothing lost), and the database refusing
connections (the run stops within 30 s: `interrupted`, exit 1, its `--json`, one line naming the ledger; what it
paid for is spooled and written at the next start, which resumes the run with exact totals)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ledger import Ledger
from tests.cli.cli_kit import ROOT, cli_env, switchboard
from tests.conftest import postgres_database_url, postgres_url_or_skip
from tests.faults.invariants import check_invariants

pytestmark = pytest.mark.slow
TASKS = 12


@pytest.fixture
def database() -> Iterator[tuple[str, str]]:
    """A database of the test's own: (its URL, its name)."""
    with postgres_database_url(postgres_url_or_skip()) as url:
        yield url, str(make_url(url).database)


def _admin(sql: str) -> None:
    engine = create_engine(postgres_url_or_skip(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def _kill_connections(name: str) -> None:
    _admin(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )


def _start(tmp_path: Path, url: str, latency_ms: int) -> tuple[subprocess.Popen[str], Path, dict[str, str]]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: outage\ntasks:\n" + "".join(f"  - {{id: t{n}, type: code_review, prompt: p{n}}}\n" for n in range(TASKS))
    )
    providers = tmp_path / "providers.yaml"
    providers.write_text(f"providers:\n  steady: {{type: local_mock, latency_ms: {latency_ms}, max_concurrency: 2}}\n")
    env = cli_env(tmp_path, SWITCHBOARD_DATABASE_URL=url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(spec), "--providers", str(providers), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    return proc, spec, env


def _wait_for_attempts(url: str, n: int, proc: subprocess.Popen[str]) -> None:
    engine = create_engine(url)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            try:
                with engine.connect() as conn:
                    if conn.execute(text("select count(*) from provider_usage")).scalar_one() >= n:
                        return
            except Exception:  # not created yet
                continue
        raise AssertionError("the run never got going")
    finally:
        engine.dispose()


def test_connections_killed_mid_run_lose_nothing(tmp_path: Path, database: tuple[str, str]) -> None:
    url, name = database
    proc, _, _ = _start(tmp_path, url, latency_ms=800)
    _wait_for_attempts(url, 2, proc)
    for _ in range(3):
        _kill_connections(name)
        time.sleep(1.0)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    out = json.loads(stdout)
    assert out["totals"]["completed"] == TASKS and out["totals"]["spooled_rows"] == 0
    ledger = Ledger(url=url)
    check_invariants(ledger, out["run"]["id"], provider_calls=TASKS)  # one paid call per task, each recorded
    ledger.close()


def test_database_gone_mid_run_stops_it_and_the_next_start_resumes_exactly(
    tmp_path: Path, database: tuple[str, str]
) -> None:
    url, name = database
    proc, spec, env = _start(tmp_path, url, latency_ms=1500)
    _wait_for_attempts(url, 2, proc)
    _admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    _kill_connections(name)
    gone = time.monotonic()
    try:
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        _admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    assert time.monotonic() - gone < 30, "the run did not end within 30 s"
    assert proc.returncode == 1, stderr[-3000:]
    out = json.loads(stdout)
    assert out["run"]["status"] == "interrupted"
    # Every task is listed from what the run knew without its ledger: those answered with their output, the rest
    # cancelled or not reached, the attempts it could not write with them.
    lost = {t["id"]: t for t in out["tasks"]}
    assert list(lost) == [f"t{n}" for n in range(TASKS)]
    totals = out["totals"]
    assert totals["completed"] >= 2 and totals["completed"] + totals["cancelled"] + totals["pending"] == TASKS
    for task in lost.values():
        assert task["status"] in {"completed", "cancelled", "pending"}
        if task["status"] == "completed":
            assert task["output"] and task["provider"] == "steady"
    assert totals["spooled_rows"] > 0 and totals["attempts"] == sum(len(t["attempts"]) for t in lost.values()) > 0
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and name in errors[0] and "could not be reached" in errors[0], stderr[-3000:]
    assert "Traceback" not in stderr, stderr

    providers = tmp_path / "fast.yaml"
    providers.write_text("providers:\n  steady: {type: local_mock, latency_ms: 0}\n")
    again = switchboard("run", str(spec), "--providers", str(providers), "--json", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "spooled row(s) to the ledger at" in again.stderr
    resumed = json.loads(again.stdout)
    assert resumed["run"]["id"] == out["run"]["id"] and resumed["totals"]["completed"] == TASKS
    assert resumed["totals"]["spooled_rows"] == 0
    for task in resumed["tasks"]:  # a task paid for before the outage was not paid for again
        assert [a["outcome"] for a in task["attempts"]].count("success") == 1
        if lost[task["id"]]["status"] == "completed":
            assert task["output"] == lost[task["id"]]["output"]
    ledger = Ledger(url=url)
    check_invariants(ledger, out["run"]["id"])
    assert abs(resumed["totals"]["cost_usd"] - sum(a.cost_usd for a in ledger.attempts(out["run"]["id"]))) < 1e-9
    ledger.close()
