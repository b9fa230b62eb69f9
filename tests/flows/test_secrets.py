"""Secrets: the env-then-Secret-block resolver, and no key value leaking anywhere a run writes."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.secrets import block_name, secret_resolver
from tests.fakes.claude_harness import FakeCli
from tests.fakes.fake_llm_servers import FakeAnthropic, FakeOpenAI, anthropic_error, closed_port_url, openai_error
from tests.leak_check import database_bytes, database_text

ROOT = Path(__file__).resolve().parents[2]
ENV_NAME = "SWITCHBOARD_TEST_RESOLVER_KEY"
BLOCK = "switchboard-test-resolver-key"


@pytest.fixture
def saved_block(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from prefect.blocks.system import Secret

    monkeypatch.delenv(ENV_NAME, raising=False)
    Secret(value="value-from-block").save(BLOCK, overwrite=True)
    yield BLOCK
    Secret.delete(BLOCK)


def test_block_names_are_lowercase_with_dashes() -> None:
    assert block_name("ANTHROPIC_API_KEY") == "anthropic-api-key"
    assert block_name("openai-key") == "openai-key"


def test_the_env_var_wins_over_the_block(saved_block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_NAME, "value-from-env")
    assert secret_resolver()(ENV_NAME) == "value-from-env"


def test_the_block_is_used_when_the_env_var_is_unset(saved_block: str) -> None:
    resolve = secret_resolver()
    assert resolve(ENV_NAME) == "value-from-block"
    assert resolve(BLOCK) == "value-from-block"  # a block name given as is works too


def test_an_empty_env_var_counts_as_unset(saved_block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_NAME, "")
    assert secret_resolver()(ENV_NAME) == "value-from-block"


def test_neither_env_nor_block_gives_none(prefect_harness: None) -> None:
    assert secret_resolver()("SWITCHBOARD_TEST_NO_SUCH_KEY") is None


def test_blocks_can_be_turned_off(saved_block: str) -> None:
    assert secret_resolver(use_blocks=False)(ENV_NAME) is None


def test_values_are_cached_for_the_resolvers_life(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.blocks.system import Secret

    monkeypatch.delenv(ENV_NAME, raising=False)
    Secret(value="first").save(BLOCK, overwrite=True)
    resolve = secret_resolver()
    assert resolve(ENV_NAME) == "first"
    Secret(value="second").save(BLOCK, overwrite=True)
    assert resolve(ENV_NAME) == "first"  # providers ask on every request; one API call is enough
    assert secret_resolver()(ENV_NAME) == "second"
    Secret.delete(BLOCK)


def test_a_json_secret_is_not_a_key(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.blocks.system import Secret

    monkeypatch.delenv(ENV_NAME, raising=False)
    Secret(value={"not": "a string"}).save(BLOCK, overwrite=True)
    assert secret_resolver()(ENV_NAME) is None
    Secret.delete(BLOCK)


async def test_works_from_inside_a_running_event_loop(saved_block: str) -> None:
    # Providers ask for keys from their async code; Prefect's sync/async dispatch must not hand back a coroutine.
    resolve = secret_resolver()
    assert await asyncio.to_thread(resolve, ENV_NAME) == "value-from-block"
    assert resolve(ENV_NAME) == "value-from-block"


def test_a_resolver_made_inside_a_flow_run_reads_blocks_from_other_threads(saved_block: str) -> None:
    from prefect import flow

    @flow
    def make_resolver() -> object:
        return secret_resolver()

    resolve = make_resolver()
    result: list[str | None] = []
    worker = threading.Thread(target=lambda: result.append(resolve(ENV_NAME)))  # type: ignore[operator]
    worker.start()
    worker.join(30)
    assert result == ["value-from-block"]


def _resolve_in_subprocess(tmp_path: Path, extra_env: dict[str, str], timeout_s: float = 1.0) -> tuple[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), **extra_env)
    code = (
        "import time\n"
        "from flows.secrets import secret_resolver\n"
        f"resolve = secret_resolver(timeout_s={timeout_s})\n"
        "t = time.monotonic()\n"
        "first = resolve('SWITCHBOARD_TEST_NO_SUCH_KEY')\n"
        "second = resolve('SWITCHBOARD_TEST_OTHER_KEY')\n"
        "print(first, second, round(time.monotonic() - t, 2))\n"
    )
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=True
    )
    return out.stdout.strip(), time.monotonic() - started


def test_without_a_prefect_api_no_block_lookup_is_tried(tmp_path: Path) -> None:
    stdout, _ = _resolve_in_subprocess(tmp_path, {})
    first, second, lookup_s = stdout.split()
    assert (first, second) == ("None", "None")
    # No temporary Prefect server was started: it would have created its database here and taken ~10 s.
    assert not (tmp_path / "prefect-home" / "prefect.db").exists()
    assert float(lookup_s) < 5


def test_an_unreachable_prefect_api_costs_one_short_timeout(tmp_path: Path) -> None:
    stdout, _ = _resolve_in_subprocess(tmp_path, {"PREFECT_API_URL": closed_port_url() + "/api"}, timeout_s=1.0)
    first, second, lookup_s = stdout.split()
    assert (first, second) == ("None", "None")
    # At most one timeout in total: after it, blocks are not tried again.
    assert float(lookup_s) < 2.5


@pytest.mark.slow
def test_ephemeral_mode_reads_blocks_when_the_resolver_is_made_inside_the_flow(tmp_path: Path) -> None:
    # `switchboard run` without PREFECT_API_URL: the flow's temporary server is the only API there is.
    code = (
        "import threading\n"
        "from prefect import flow\n"
        "from prefect.blocks.system import Secret\n"
        "from flows.secrets import secret_resolver\n"
        "@flow\n"
        "def run():\n"
        "    Secret(value='from-ephemeral-block').save('switchboard-eph-key', overwrite=True)\n"
        "    resolve, out = secret_resolver(), []\n"
        "    worker = threading.Thread(target=lambda: out.append(resolve('SWITCHBOARD_EPH_KEY')))\n"
        "    worker.start(); worker.join(30)\n"
        "    return out\n"
        "print(run())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_LOGGING_LEVEL="WARNING")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=180, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "['from-ephemeral-block']"


# --- no key value anywhere a run writes (slow: real subprocesses) ------------------------------------------

LEAK_KEYS = {
    "LEAK_ANTHROPIC_KEY": "sk-ant-api03-LEAKCANARY-ANTHROPIC-7f3a9c2e11",
    "LEAK_OPENAI_KEY": "sk-proj-LEAKCANARY-OPENAI-5b8d0e4f22",
    "LEAK_TEAM_B_KEY": "sk-ant-api03-LEAKCANARY-TEAMB-9c1e7a3b33",
}


def _leaks(text: str) -> list[str]:
    return [name for name, value in LEAK_KEYS.items() if value in text]


@pytest.mark.slow
def test_no_key_value_leaks_into_output_ledger_logs_or_artifacts(tmp_path: Path) -> None:
    anthropic_key, openai_key, team_b_key = LEAK_KEYS.values()
    cli = FakeCli(tmp_path / "fake-claude")
    # A CLI that prints the key to stderr and then fails, and one that quotes it in its error result.
    cli.scenario(
        {
            "api_key": [
                {"kind": "exit_silent", "echo_api_key": True, "stderr": f"config: key={team_b_key}", "exit_code": 1},
                {"kind": "api_error", "status": 401, "message": f"API Error: 401 invalid x-api-key {team_b_key}"},
            ]
        }
    )
    hostile = [f"invalid x-api-key {anthropic_key}", f"Incorrect API key provided: {openai_key}."]
    # The model lists answer (routing skips a provider whose health check fails, and these must be called);
    # the completions are hostile: every 401 body quotes the key the client sent.
    with FakeAnthropic() as anthropic, FakeOpenAI() as openai:
        anthropic.script(*[anthropic_error(401, "authentication_error", hostile[0]) for _ in range(10)])
        openai.script(*[openai_error(401, hostile[1], "invalid_request_error", "invalid_api_key") for _ in range(10)])
        providers = {
            "claude": {
                "type": "claude_cli",
                "priority": 1,
                "capabilities": ["code_review", "bug_fix"],
                "subscriptions": [{"name": "team-b", "api_key_env": "LEAK_TEAM_B_KEY"}],
            },
            "anthropic": {"type": "anthropic", "priority": 1, "capabilities": ["summarization", "pr_review"],
                          "base_url": anthropic.url, "api_key_env": "LEAK_ANTHROPIC_KEY"},
            "openai": {
                "type": "openai_compatible",
                "priority": 2,
                "capabilities": ["summarization", "pr_review"],
                "base_url": openai.url + "/v1",
                "model": "gpt-4o",
                "api_key_env": "LEAK_OPENAI_KEY",
            },
            # Only general tasks reach the mock; pr_review has nowhere left to go and fails with the 401s.
            "mock": {"type": "local_mock", "priority": 9, "capabilities": ["code_review", "bug_fix", "summarization"]},
        }  # fmt: skip
        spec = {
            "name": "leak-check",
            "tasks": [
                {"id": "review", "type": "code_review", "prompt": "Review"},
                {"id": "fix", "type": "bug_fix", "prompt": "Fix", "depends_on": ["review"]},
                {"id": "summary", "type": "summarization", "prompt": "Summarize", "depends_on": ["fix"]},
                {"id": "pr", "type": "pr_review", "prompt": "Review PR", "depends_on": ["summary"]},
            ],
        }
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        (tmp_path / "providers.json").write_text(json.dumps({"version": 1, "providers": providers}))
        prefect_home = tmp_path / "prefect-home"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ANTHROPIC_", "CLAUDE_"))},
            **cli.env(),
            **LEAK_KEYS,
            "SWITCHBOARD_HOME": str(tmp_path / "home"),
            "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
            "PREFECT_HOME": str(prefect_home),
        }

        def switchboard(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT
            )

        run = switchboard("run", str(tmp_path / "spec.json"), "--providers", str(tmp_path / "providers.json"),
                          "--json", "--verbose")  # fmt: skip
        # Now the health checks are hostile too.
        anthropic.script(anthropic_error(401, "authentication_error", hostile[0]), path="/v1/models")
        openai.script(openai_error(401, hostile[1], "invalid_request_error", "invalid_api_key"), path="/v1/models")
        check = switchboard("providers", "--providers", str(tmp_path / "providers.json"), "--check", "--json")
        listing = switchboard("providers", "--providers", str(tmp_path / "providers.json"))

    # The run really went through the hostile paths (else this test proves nothing).
    assert run.returncode == 1, run.stderr[-3000:]
    out = json.loads(run.stdout)
    tasks = {t["id"]: t for t in out["tasks"]}
    assert [a["outcome"] for a in tasks["review"]["attempts"]] == ["unavailable", "success"]
    assert [a["outcome"] for a in tasks["fix"]["attempts"]] == ["authentication", "success"]
    assert [a["provider"] for a in tasks["summary"]["attempts"]] == ["anthropic", "openai", "mock"]
    assert tasks["pr"]["status"] == "failed" and "authentication" in tasks["pr"]["error"]
    assert "[redacted]" in tasks["pr"]["error"]  # the echoed key was there and was scrubbed
    assert any(log in run.stderr for log in ("Beginning flow run", "Finished in state"))  # --verbose logs shown
    assert check.returncode == 1 and json.loads(check.stdout)["healthy"] is False

    ledger_db = tmp_path / "ledger.db"
    prefect_db = prefect_home / "prefect.db"
    assert prefect_db.exists()
    prefect = sqlite3.connect(prefect_db)
    artifacts = prefect.execute("select key, type, data, description from artifact").fetchall()
    assert any(key == f"switchboard-{out['run']['id'].lower()}" for key, *_ in artifacts)
    prefect.close()
    places = {
        "run stdout": run.stdout,
        "run stderr (with Prefect logs)": run.stderr,
        "providers --check --json": check.stdout + check.stderr,
        "providers listing": listing.stdout + listing.stderr,
        "ledger rows": database_text(ledger_db),
        "ledger files": database_bytes(ledger_db),
        "Prefect artifacts": "\n".join(str(a) for a in artifacts),
        "Prefect database rows": database_text(prefect_db),
        "Prefect database files": database_bytes(prefect_db),
    }
    leaks = {place: _leaks(text) for place, text in places.items() if _leaks(text)}
    assert leaks == {}
