"""`switchboard providers [--check] [--json]` as a user runs it, against the stand-ins for each service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.claude_harness import FakeCli
from tests.fakes.fake_llm_servers import FakeAnthropic, FakeOpenAI, Scripted, anthropic_error, closed_port_url

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
pytestmark = pytest.mark.slow

ANTHROPIC_KEY = "sk-ant-api03-PROVIDERS-CLI-KEY-31415926535"
TEAM_B_KEY = "sk-ant-api03-TEAM-B-KEY-27182818284"
OPENAI_KEY = "sk-proj-PROVIDERS-CLI-OPENAI-16180339887"


@pytest.fixture
def fake_cli(tmp_path: Path) -> FakeCli:
    return FakeCli(tmp_path / "fake-claude")


@pytest.fixture
def anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=ANTHROPIC_KEY) as server:
        yield server


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=OPENAI_KEY) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, fake_cli: FakeCli) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ANTHROPIC_", "CLAUDE_"))}
    return {
        **base,
        **fake_cli.env(),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "SWITCHBOARD_HOME": str(tmp_path / "home"),
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "ANTHROPIC_API_KEY_TEAM_B": TEAM_B_KEY,
        "OPENAI_TEST_KEY": OPENAI_KEY,
    }


def switchboard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT
    )


def write_providers(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "providers.json"
    path.write_text(json.dumps({"version": 1, "providers": doc}))
    return str(path)


def assert_no_keys(*texts: str) -> None:
    for text in texts:
        for key in (ANTHROPIC_KEY, TEAM_B_KEY, OPENAI_KEY):
            assert key not in text


def test_lists_every_type_in_the_example_with_subscriptions_and_no_key_values(env: dict[str, str]) -> None:
    result = switchboard("providers", "--providers", str(EXAMPLES / "providers-all.yaml"), "--json", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    by_id = {p["id"]: p for p in out["providers"]}
    assert [p["type"] for p in out["providers"]] == ["claude_cli", "anthropic", "openai_compatible", "local_mock"]
    claude = by_id["claude_code"]
    assert claude["capabilities"] == ["bug_fix", "code_analysis", "code_review", "feature", "pr_review"]
    assert claude["available"] is True  # the fake `claude` is on PATH
    team_a, team_b = claude["subscriptions"]
    assert (team_a["name"], team_a["kind"], team_a["config_dir"]) == ("team-a", "config_dir", "~/.claude-team-a")
    assert team_a["limits"] == {"requests_per_hour": 200, "cost_usd_per_day": 40.0}
    assert team_a["state"] == "available"
    assert (team_b["name"], team_b["api_key_env"], team_b["api_key"]) == (
        "team-b-api",
        "ANTHROPIC_API_KEY_TEAM_B",
        "set",
    )
    assert by_id["anthropic_api"]["api_key"] == "set" and by_id["anthropic_api"]["limits"] == {
        "requests_per_minute": 50
    }
    assert by_id["local_llama"]["base_url"] == "http://localhost:11434/v1"
    assert by_id["local_llama"]["api_key_env"] is None
    assert by_id["last_resort"]["capabilities"] == "all"
    assert "healthy" not in out  # nothing was probed
    assert_no_keys(result.stdout, result.stderr)

    text = switchboard("providers", "--providers", str(EXAMPLES / "providers-all.yaml"), env=env)
    assert text.returncode == 0
    assert "team-b-api" in text.stdout and "ANTHROPIC_API_KEY_TEAM_B" in text.stdout
    assert_no_keys(text.stdout, text.stderr)


def test_a_missing_key_is_reported_by_name(env: dict[str, str]) -> None:
    env = {k: v for k, v in env.items() if k != "ANTHROPIC_API_KEY_TEAM_B"}
    result = switchboard("providers", "--providers", str(EXAMPLES / "providers-all.yaml"), "--json", env=env)
    subs = next(p for p in json.loads(result.stdout)["providers"] if p["id"] == "claude_code")["subscriptions"]
    assert subs[1]["api_key"] == "missing"


def test_invalid_providers_file_exits_2_naming_file_and_field(env: dict[str, str], tmp_path: Path) -> None:
    path = write_providers(tmp_path, {"cli": {"type": "claude_cli", "subscriptions": [{"name": "a"}]}})
    result = switchboard("providers", "--providers", path, env=env)
    assert result.returncode == 2
    assert path in result.stderr and "providers.cli.subscriptions.0" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_check_probes_every_provider_and_passes_when_all_answer(
    env: dict[str, str], tmp_path: Path, fake_cli: FakeCli, anthropic: FakeAnthropic, openai: FakeOpenAI
) -> None:
    path = write_providers(
        tmp_path,
        {
            "cli": {"type": "claude_cli", "subscriptions": [{"name": "b", "api_key_env": "ANTHROPIC_API_KEY_TEAM_B"}]},
            "api": {"type": "anthropic", "base_url": anthropic.url},
            "oai": {"type": "openai_compatible", "base_url": openai.url + "/v1", "model": "gpt-4o",
                    "api_key_env": "OPENAI_TEST_KEY"},
            "mock": {"type": "local_mock"},
        },
    )  # fmt: skip
    result = switchboard("providers", "--providers", path, "--check", "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["healthy"] is True
    health = {p["id"]: p["health"] for p in out["providers"]}
    assert {h["status"] for h in health.values()} == {"healthy"}
    assert "2.1.197" in health["cli"]["detail"]  # the fake CLI's --version
    for pid in ("cli", "api", "oai"):
        assert health[pid]["latency_ms"] >= 0
    # The HTTP probes went to the model lists, with the keys.
    assert [(r.method, r.path) for r in anthropic.requests] == [("GET", "/v1/models")]
    assert anthropic.requests[0].headers["x-api-key"] == ANTHROPIC_KEY
    assert [(r.method, r.path) for r in openai.requests] == [("GET", "/v1/models")]
    assert_no_keys(result.stdout, result.stderr)


def test_check_exits_1_when_a_provider_is_down_and_says_why(
    env: dict[str, str], tmp_path: Path, fake_cli: FakeCli, anthropic: FakeAnthropic
) -> None:
    # A hostile server that echoes the key it was sent; the output must still not carry it.
    anthropic.script(anthropic_error(401, "authentication_error", f"bad key {ANTHROPIC_KEY}"), path="/v1/models")
    fake_cli.scenario({"version_exit_code": 3})
    path = write_providers(
        tmp_path,
        {
            "cli": {"type": "claude_cli"},
            "api": {"type": "anthropic", "base_url": anthropic.url},
            "down": {"type": "openai_compatible", "base_url": closed_port_url() + "/v1", "model": "llama3.1"},
            "gone": {"type": "claude_cli", "executable": str(tmp_path / "no-such-claude")},
            "off": {"type": "local_mock", "enabled": False},
        },
    )
    result = switchboard("providers", "--providers", path, "--check", "--json", env=env)
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert out["healthy"] is False
    by_id = {p["id"]: p for p in out["providers"]}
    assert by_id["cli"]["health"]["status"] == "unhealthy" and "exited with 3" in by_id["cli"]["health"]["detail"]
    assert by_id["api"]["health"] == {**by_id["api"]["health"], "status": "unhealthy", "detail": "authentication"}
    assert by_id["down"]["health"]["status"] == "unhealthy" and "connect" in by_id["down"]["health"]["detail"]
    assert by_id["gone"]["available"] is False and "not found" in by_id["gone"]["health"]["detail"]
    assert by_id["off"]["enabled"] is False and "health" not in by_id["off"]  # disabled: listed, not probed
    assert_no_keys(result.stdout, result.stderr)

    text = switchboard("providers", "--providers", path, "--check", env=env)
    assert text.returncode == 1 and "unhealthy" in text.stdout
    assert_no_keys(text.stdout, text.stderr)


def test_check_gives_up_on_a_silent_provider_after_the_timeout(
    env: dict[str, str], tmp_path: Path, anthropic: FakeAnthropic
) -> None:
    anthropic.script(Scripted(200, {"data": []}, delay_s=30), path="/v1/models")
    path = write_providers(
        tmp_path, {"slow": {"type": "anthropic", "base_url": anthropic.url}, "mock": {"type": "local_mock"}}
    )
    result = switchboard("providers", "--providers", path, "--check", "--timeout", "1", "--json", env=env)
    assert result.returncode == 1
    health = {p["id"]: p["health"] for p in json.loads(result.stdout)["providers"]}
    assert health["slow"]["status"] == "unhealthy" and health["slow"]["detail"] == "no answer within 1s"
    assert health["mock"]["status"] == "healthy"  # probed concurrently, unaffected


def test_check_output_is_readable_at_80_columns_in_a_pipe(
    env: dict[str, str], tmp_path: Path, anthropic: FakeAnthropic
) -> None:
    # Long health details: each must come through whole, wrapped under its label, never cut to "…".
    path = write_providers(
        tmp_path,
        {
            "cli": {"type": "claude_cli", "capabilities": ["code_review", "bug_fix", "feature", "code_analysis"]},
            "api": {"type": "anthropic", "base_url": anthropic.url, "api_key_env": "NOT_SET_IN_THIS_TEST"},
            "down": {"type": "openai_compatible", "base_url": closed_port_url() + "/v1", "model": "llama3.1"},
        },
    )
    probe = switchboard("providers", "--providers", path, "--check", "--json", env=env)
    details = {p["id"]: p["health"]["detail"] for p in json.loads(probe.stdout)["providers"]}
    assert all(len(d) > 40 or pid == "cli" for pid, d in details.items())

    text = switchboard("providers", "--providers", path, "--check", env={**env, "COLUMNS": "80"})
    assert text.returncode == 1
    assert "…" not in text.stdout
    assert max(len(line.rstrip()) for line in text.stdout.splitlines()) <= 80
    flat = " ".join(text.stdout.split())
    for pid, detail in details.items():
        assert " ".join(detail.split()) in flat, pid
    assert "bug_fix, code_analysis, code_review, feature" in flat  # sorted, whole


def test_check_tells_each_subscription_whether_its_login_or_key_is_accepted(
    env: dict[str, str], tmp_path: Path, fake_cli: FakeCli
) -> None:
    logged_in, empty = tmp_path / "claude-in", tmp_path / "claude-empty"
    logged_in.mkdir()
    empty.mkdir()
    (logged_in / ".credentials.json").write_text('{"claudeAiOauth": {"accessToken": "x", "expiresAt": 4102444800000}}')
    # The API refuses team B's key: the CLI's first api_retry line says so and the check stops it there.
    fake_cli.scenario({"api_key": {"kind": "api_retry", "status": 401}})
    subs = [
        {"name": "in", "config_dir": str(logged_in)},
        {"name": "empty", "config_dir": str(empty)},
        {"name": "b", "api_key_env": "ANTHROPIC_API_KEY_TEAM_B"},
        {"name": "unset", "api_key_env": "NO_SUCH_KEY_VARIABLE"},
    ]
    path = write_providers(tmp_path, {"cli": {"type": "claude_cli", "subscriptions": subs}})
    result = switchboard("providers", "--providers", path, "--check", "--json", env=env)
    subscriptions = {s["name"]: s["check"] for s in json.loads(result.stdout)["providers"][0]["subscriptions"]}
    assert {name: (c["verdict"], c["asked_api"]) for name, c in subscriptions.items()} == {
        "in": ("accepted", True),
        "empty": ("not_logged_in", False),
        "b": ("refused", True),
        "unset": ("missing_key", False),
    }
    # Only the subscriptions that have a credential were asked, once each; the refused key's run was stopped
    # at its first retry.
    asked = [c for c in fake_cli.calls() if "-p" in c["argv"]]
    assert sorted(c["config_dir"] or c["key"] for c in asked) == sorted([str(logged_in), "api_key"])
    assert fake_cli.requests() == {"api_key": 1}
    assert_no_keys(result.stdout, result.stderr)

    text = " ".join(switchboard("providers", "--providers", path, "--check", env=env).stdout.split())
    assert "check: accepted (asked the API)" in text and "check: not logged in (no request)" in text
    assert "check: refused (asked the API)" in text and "check: key missing (no request)" in text
    assert_no_keys(text)
