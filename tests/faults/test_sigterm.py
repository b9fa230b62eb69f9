"""SIGTERM (docker stop, systemd, Kubernetes, `timeout`) is handled like Ctrl-C: the calls in flight are recorded
`cancelled`, nothing is blamed on the provider (no failure outcome, no circuit opened), the run ends
`interrupted` with its `--json`, exit 143, and the next run of the spec resumes it."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger import Ledger
from tests.cli.cli_kit import ROOT, cli_env, switchboard
from tests.faults.invariants import check_invariants

pytestmark = pytest.mark.slow


def _wait_for_calls_in_flight(db: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        if not db.exists():
            continue
        try:
            done = sqlite3.connect(db).execute("select count(*) from provider_usage").fetchone()[0]
        except sqlite3.OperationalError:
            continue
        if done >= 2:  # some calls answered, others are in flight (each takes 1.5 s)
            return
    raise AssertionError("the run never got going")


def test_sigterm_interrupts_like_ctrl_c_and_blames_no_provider(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: term\ntasks:\n" + "".join(f"  - {{id: t{n}, type: code_review, prompt: p{n}}}\n" for n in range(8))
    )
    slow = tmp_path / "slow.yaml"
    slow.write_text("providers:\n  steady: {type: local_mock, latency_ms: 1500, max_concurrency: 2}\n")
    env = cli_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(spec), "--providers", str(slow), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    _wait_for_calls_in_flight(tmp_path / "ledger.db", proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-3000:]
    assert time.monotonic() - sent < 30
    assert "interrupted by SIGTERM: in-flight calls were stopped" in stderr
    out = json.loads(stdout)
    assert out["run"]["status"] == "interrupted"
    statuses = {t["status"] for t in out["tasks"]}
    assert statuses <= {"completed", "cancelled"} and "cancelled" in statuses
    outcomes = {a["outcome"] for t in out["tasks"] for a in t["attempts"]}
    assert outcomes <= {"success", "cancelled"}, outcomes  # nothing blamed on the provider
    db = sqlite3.connect(tmp_path / "ledger.db")
    assert db.execute("select count(*) from provider_events where kind = 'circuit.opened'").fetchone()[0] == 0
    ledger = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    check_invariants(ledger, out["run"]["id"])

    fast = tmp_path / "fast.yaml"
    fast.write_text("providers:\n  steady: {type: local_mock, latency_ms: 0}\n")
    again = switchboard("run", str(spec), "--providers", str(fast), "--json", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads(again.stdout)
    assert resumed["run"]["id"] == out["run"]["id"] and resumed["totals"]["completed"] == 8
    paid_before = {t["id"] for t in out["tasks"] if t["status"] == "completed"}
    for task in resumed["tasks"]:
        if task["id"] in paid_before:  # never called again
            assert [a["outcome"] for a in task["attempts"]] == ["success"]
    check_invariants(ledger, out["run"]["id"])
