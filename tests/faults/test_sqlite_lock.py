"""An SQLite write lock held for 40 s by another process (a backup, a long transaction) in the middle of a run:
no provider is marked unhealthy, no task fails, the run completes and every attempt is in the ledger."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger import Ledger
from tests.cli.cli_kit import ROOT, cli_env
from tests.faults.invariants import check_invariants

pytestmark = pytest.mark.slow

HOLD_S = 40
HOLDER = f"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep({HOLD_S})
db.execute("ROLLBACK")
"""


def test_a_write_lock_held_40_s_fails_nothing_and_blames_no_provider(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: locked\ntasks:\n"
        + "".join(f"  - {{id: t{n}, type: code_review, prompt: p{n}}}\n" for n in range(36))
        + "  - {id: after, type: summarization, prompt: sum, depends_on: [t0, t35]}\n"
    )
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        "circuit: {failure_threshold: 2, cooldown_s: 60}\n"
        "providers:\n  steady: {type: local_mock, latency_ms: 2500, max_concurrency: 2, timeout_s: 10}\n"
    )
    db = tmp_path / "ledger.db"
    env = cli_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(spec), "--providers", str(providers), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        try:
            if db.exists() and sqlite3.connect(db).execute("select count(*) from provider_usage").fetchone()[0] >= 2:
                break
        except sqlite3.OperationalError:
            pass
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    stdout, stderr = proc.communicate(timeout=300)
    holder.wait(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    out = json.loads(stdout)
    assert out["totals"]["completed"] == 37 and out["totals"]["failed"] == 0
    assert {a["outcome"] for t in out["tasks"] for a in t["attempts"]} == {"success"}
    conn = sqlite3.connect(db)
    assert conn.execute("select count(*) from provider_events where kind = 'circuit.opened'").fetchone()[0] == 0
    assert conn.execute("select status from providers where provider_id = 'steady'").fetchone()[0] != "unhealthy"
    check_invariants(Ledger(url=f"sqlite:///{db}"), out["run"]["id"], provider_calls=37)
    assert "Future exception was never retrieved" not in stderr
