"""When the shared limits store cannot be used mid-run, routing refuses rather than overspends: the tasks fail
naming the store, the run exits 1, and stderr says it in one line."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.cli.cli_kit import ROOT, cli_env

pytestmark = pytest.mark.slow


def _break_store_after_first_call(db: Path, stop: threading.Event) -> None:
    """Once the first call has reserved in the store (and is out, for 700 ms), make the store's tables unusable
    (as a lost database would be). Waiting for its attempt row instead raced the next task's reservation, which
    follows that row's commit at once."""
    while not stop.is_set():
        try:
            with sqlite3.connect(db, timeout=30) as conn:
                if conn.execute("select count(*) from shared_reservations").fetchone()[0] >= 1:
                    conn.execute("drop table shared_lock")
                    return
        except sqlite3.OperationalError:  # tables not created yet
            pass
        time.sleep(0.02)


def test_a_store_lost_mid_run_refuses_the_rest_and_says_so_in_one_line(tmp_path: Path) -> None:
    # The ephemeral Prefect server starts slowly on a loaded machine.
    env = cli_env(tmp_path, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")
    db = tmp_path / "ledger.db"
    spec = tmp_path / "chain.yaml"
    tasks = "".join(
        f"  - {{id: t{i}, type: code_review, prompt: step {i}{', depends_on: [t' + str(i - 1) + ']' if i else ''}}}\n"
        for i in range(4)
    )
    spec.write_text(f"name: chain\ntasks:\n{tasks}")
    providers = tmp_path / "providers.yaml"
    # Calls longer than a lease's time: t1 cannot ride on what t0's lease reserved before the store broke (which
    # would be no overspend, but is not this test's case), it must ask the store.
    providers.write_text("budget: {max_cost_usd_per_day: 10}\nproviders:\n  m: {type: local_mock, latency_ms: 700}\n")
    stop = threading.Event()
    breaker = threading.Thread(target=_break_store_after_first_call, args=(db, stop), daemon=True)
    breaker.start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cli", "run", str(spec), "--providers", str(providers), "--json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=240,
        )
    finally:
        stop.set()
        breaker.join(5)
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stdout.strip(), result.stderr[-3000:]
    summary = json.loads(result.stdout)
    by_id = {t["id"]: t for t in summary["tasks"]}
    assert by_id["t0"]["status"] == "completed"
    assert by_id["t1"]["status"] == "failed"
    assert "the shared limits store (the ledger at sqlite:///" in by_id["t1"]["error"]
    assert "is unavailable: no such table: shared_lock" in by_id["t1"]["error"]
    assert by_id["t1"]["attempts"] == []  # nothing was sent
    assert [by_id["t2"]["status"], by_id["t3"]["status"]] == ["skipped", "skipped"]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert lines == [
        f"error: the shared limits store (the ledger at sqlite:///{db}) could not be used: 1 task refused rather "
        "than risk passing a limit; run the spec again once the database answers"
    ]
