"""Claude Code subscriptions hold against the real CLI: a limited or refused subscription hands the task on at once.

`switchboard run` on a chain of three tasks, one `claude_cli` provider with two subscriptions, the first in
trouble and the second fine. The real Claude Code CLI (npm, pinned in tests/fakes/real_claude.py) talks to the
Messages API stand-in (tests/fakes/fake_messages_api.py), which answers each credential in its mode. Checked:
every task completes, each subscription tried is its own attempt row, the troubled credential gets at most
two requests (here exactly one), the CLI is stopped at its first `api_retry` line where it prints one, and no
credential value appears in the output, the logs, the ledger or Prefect's records.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fake_messages_api import FakeMessagesApi, Mode
from tests.fakes.real_claude import offline_env, write_login
from tests.leak_check import database_bytes, database_text

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

LOGIN_A = "sk-ant-oat01-E2E-LOGIN-A-1111111111111111"
LOGIN_B = "sk-ant-oat01-E2E-LOGIN-B-2222222222222222"
KEY_A = "sk-ant-api03-E2E-KEY-A-3333333333333333"
KEY_B = "sk-ant-api03-E2E-KEY-B-4444444444444444"
CREDENTIALS = (LOGIN_A, LOGIN_B, KEY_A, KEY_B)


@dataclass(frozen=True)
class Case:
    mode: Mode
    troubled: str  # "login" (a config dir with .credentials.json) or "key" (api_key_env)
    outcome: str | None  # the troubled subscription's attempt outcome; None: it served the first task
    stopped_at_first_retry: bool = False


CASES = {
    "a_usage_limit": Case("usage_limit", "login", "quota_exhausted"),
    "b_warned": Case("allowed_warning", "login", None),
    "c_refused_401": Case("unauthorized", "login", "authentication", stopped_at_first_retry=True),
    "d_rate_limited_30s": Case("rate_limited", "key", "rate_limited", stopped_at_first_retry=True),
}


@pytest.fixture
def api() -> Iterator[FakeMessagesApi]:
    with FakeMessagesApi() as server:
        yield server


def subscriptions(tmp_path: Path, troubled: str) -> tuple[list[dict[str, str]], str, str]:
    """[troubled "a", fine "b"] authenticating in opposite ways (both ways are covered in every case), and
    their credential values."""
    if troubled == "login":
        write_login(tmp_path / "claude-a", LOGIN_A)
        subs = [{"name": "a", "config_dir": str(tmp_path / "claude-a")}, {"name": "b", "api_key_env": "E2E_KEY_B"}]
        return subs, LOGIN_A, KEY_B
    write_login(tmp_path / "claude-b", LOGIN_B)
    subs = [{"name": "a", "api_key_env": "E2E_KEY_A"}, {"name": "b", "config_dir": str(tmp_path / "claude-b")}]
    return subs, KEY_A, LOGIN_B


def run_chain(
    tmp_path: Path, real_claude: Path, api: FakeMessagesApi, subs: list[dict[str, str]], *, second_provider: bool
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    chain = [{"id": f"t{i}", "type": "code_review", "prompt": f"Review part {i}"} for i in range(1, 4)]
    for before, task in itertools.pairwise(chain):
        task["depends_on"] = [before["id"]]  # one at a time, so the order of events is fixed
    (tmp_path / "spec.json").write_text(json.dumps({"name": "subscriptions", "tasks": chain}))
    providers: dict[str, Any] = {
        "claude": {"type": "claude_cli", "executable": str(real_claude), "priority": 1, "timeout_s": 120,
                   "subscriptions": subs},
    }  # fmt: skip
    if second_provider:
        providers["mock"] = {"type": "local_mock", "priority": 2, "failure_rate": 0}
    doc = {"version": 1, "strategy": "priority_based", "providers": providers}
    (tmp_path / "providers.json").write_text(json.dumps(doc))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ANTHROPIC_", "CLAUDE_"))}
    env = {
        **base,
        **offline_env(api.url, tmp_path / "home"),
        "SWITCHBOARD_HOME": str(tmp_path / "sb-home"),
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "E2E_KEY_A": KEY_A,
        "E2E_KEY_B": KEY_B,
    }
    argv = ["run", str(tmp_path / "spec.json"), "--providers", str(tmp_path / "providers.json"), "--json", "--verbose"]
    result = subprocess.run(
        [sys.executable, "-m", "cli", *argv], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result, json.loads(result.stdout)


def attempt_rows(out: dict[str, Any]) -> dict[str, list[tuple[str, str | None, str, int]]]:
    return {
        t["id"]: [(a["provider"], a["subscription"], a["outcome"], a["attempt"]) for a in t["attempts"]]
        for t in out["tasks"]
    }


def assert_no_credential_anywhere(tmp_path: Path, result: subprocess.CompletedProcess[str]) -> None:
    ledger, prefect = tmp_path / "ledger.db", tmp_path / "prefect-home" / "prefect.db"
    assert prefect.exists()
    places = {
        "stdout": result.stdout,
        "stderr (Prefect and Switchboard logs)": result.stderr,
        "ledger rows": database_text(ledger),
        "ledger files": database_bytes(ledger),
        "Prefect records": database_text(prefect),
        "Prefect database files": database_bytes(prefect),
    }
    leaks = {place: [c[:16] for c in CREDENTIALS if c in text] for place, text in places.items()}
    assert {place: found for place, found in leaks.items() if found} == {}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_troubled_first_subscription_hands_the_chain_to_the_second(
    tmp_path: Path, real_claude: Path, api: FakeMessagesApi, name: str
) -> None:
    case = CASES[name]
    subs, troubled, fine = subscriptions(tmp_path, case.troubled)
    api.modes.update({troubled: case.mode, fine: "ok"})
    result, out = run_chain(tmp_path, real_claude, api, subs, second_provider=False)

    assert [(t["id"], t["status"], t["provider"]) for t in out["tasks"]] == [
        (f"t{i}", "completed", "claude") for i in range(1, 4)
    ]
    first = (
        [("claude", "a", "success", 1)]
        if case.outcome is None
        else [("claude", "a", case.outcome, 1), ("claude", "b", "success", 2)]
    )
    assert attempt_rows(out) == {
        "t1": first,
        "t2": [("claude", "b", "success", 1)],
        "t3": [("claude", "b", "success", 1)],
    }
    assert (out["totals"]["failovers"], out["totals"]["rotations"]) == (0, 0 if case.outcome is None else 1)
    # The troubled subscription received one request in all; the fine one the rest.
    assert api.messages(troubled) == 1
    assert api.messages(fine) == (2 if case.outcome is None else 3)
    if case.stopped_at_first_retry:
        db = sqlite3.connect(tmp_path / "ledger.db")
        (message,) = db.execute(
            "select error_message from provider_usage where task_id = 't1' and attempt = 1"
        ).fetchone()
        db.close()
        assert "stopped the CLI at its retry 1" in message
    assert_no_credential_anywhere(tmp_path, result)


def test_with_a_second_provider_the_chain_stays_on_the_free_subscription(
    tmp_path: Path, real_claude: Path, api: FakeMessagesApi
) -> None:
    subs, troubled, fine = subscriptions(tmp_path, "login")
    api.modes.update({troubled: "usage_limit", fine: "ok"})
    result, out = run_chain(tmp_path, real_claude, api, subs, second_provider=True)
    assert attempt_rows(out) == {
        "t1": [("claude", "a", "quota_exhausted", 1), ("claude", "b", "success", 2)],
        "t2": [("claude", "b", "success", 1)],
        "t3": [("claude", "b", "success", 1)],
    }
    assert (api.messages(troubled), api.messages(fine)) == (1, 3)
    assert_no_credential_anywhere(tmp_path, result)
