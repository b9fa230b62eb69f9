"""`switchboard run` with work that can wait, end to end (the CLI, Prefect, the engine) against a stand-in of the
Anthropic Message Batches API: the run waits in a vendor batch, Ctrl-C leaves it there and `show` names it, and
running the spec again polls that batch to its answers instead of submitting again."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.cli_kit import ROOT, cli_env, switchboard
from tests.fakes.fake_batch_apis import ANSWER, FakeAnthropicBatches

pytestmark = pytest.mark.slow

SPEC = """name: nightly
deferrable: true
tasks:
  - {id: a, type: summarization, prompt: "Summarize the incidents"}
  - {id: b, type: summarization, prompt: "Summarize the PRs", deadline: 12h}
  - {id: c, type: summarization, prompt: "Combine them", depends_on: [a, b]}
"""


def test_a_run_waits_in_a_vendor_batch_survives_ctrl_c_and_resumes_by_polling(tmp_path: Path) -> None:
    env = cli_env(tmp_path, SB_TEST_KEY="sk-ant-test-0123456789abcdef")
    spec = tmp_path / "nightly.yaml"
    spec.write_text(SPEC)
    with FakeAnthropicBatches(polls_to_end=None) as fake:
        providers = tmp_path / "providers.yaml"
        providers.write_text(
            "version: 1\nproviders:\n  claude_api:\n    type: anthropic\n"
            f"    base_url: {fake.url}\n    api_key_env: SB_TEST_KEY\n"
            "    batch: {gather_s: 0.2, poll_initial_s: 0.1, poll_max_s: 0.5}\n"
        )
        command = [sys.executable, "-m", "cli", "run", str(spec), "--providers", str(providers), "--json"]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        db = tmp_path / "ledger.db"
        deadline = time.monotonic() + 120
        waiting: list[tuple[str, str]] = []
        while time.monotonic() < deadline and len(waiting) < 2:
            time.sleep(0.3)
            if db.exists():
                try:
                    with sqlite3.connect(db) as conn:
                        waiting = conn.execute("select task_id, vendor_batch_id from vendor_batch_requests").fetchall()
                except sqlite3.OperationalError:
                    pass
        assert sorted(t for t, _ in waiting) == ["a", "b"], proc.stderr.read() if proc.poll() is not None else ""
        (batch_id,) = {b for _, b in waiting}
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr[-2000:]
        out = json.loads(stdout)
        run_id = out["run"]["id"]
        assert out["totals"]["waiting_in_vendor_batches"] == 2
        assert {t["id"]: t.get("vendor_batch", {}).get("id") for t in out["tasks"]} == {
            "a": batch_id,
            "b": batch_id,
            "c": None,
        }
        assert fake.cancelled == []

        shown = switchboard("show", run_id, env=env)
        assert shown.returncode == 0, shown.stderr
        assert f"waiting in vendor batch {batch_id} (claude_api): a, b" in shown.stdout

        fake.end(batch_id)
        fake.polls_to_end = 0  # c (and anything submitted again) ends at the first poll
        again = switchboard("run", str(spec), "--providers", str(providers), "--json", env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = json.loads(again.stdout)
    assert resumed["run"]["id"] == run_id
    assert {t["id"]: (t["status"], t["output"]) for t in resumed["tasks"]} == {k: ("completed", ANSWER) for k in "abc"}
    assert fake.created == 2  # a and b's batch, then c's: a and b were polled, not submitted again
    assert fake.live_calls == 0
    for task in resumed["tasks"]:
        (attempt,) = task["attempts"]
        assert attempt["cost_usd"] == pytest.approx(attempt["list_price_usd"] / 2)
