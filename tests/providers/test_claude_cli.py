"""The `claude_cli` provider against a fake `claude` executable: one call, its argv, env, output and failures."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

# pytest puts only this folder on sys.path and `tests` is not installed; make `tests.fakes` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from providers import (
    AITask,
    AuthenticationFailed,
    BadRequest,
    Cancelled,
    ExecutionContext,
    HealthStatus,
    MalformedResponse,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
    TokenUsage,
    Unavailable,
)
from providers.claude_cli import ClaudeCliConfig, ClaudeCliProvider
from providers.prompt import render_prompt
from tests.fakes.claude_harness import (
    PARENT_KEY,
    SECRETS,
    FakeCli,
    FakeClock,
    config_dirs,
    install_fake,
    wait_dead,
)

Make = Callable[..., ClaudeCliProvider]
CTX = ExecutionContext()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCli:
    return install_fake(tmp_path / "fake", monkeypatch)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make(clock: FakeClock) -> Make:
    def build(**config: Any) -> ClaudeCliProvider:
        return ClaudeCliProvider(
            "claude", ClaudeCliConfig(**config), secrets=SECRETS.get, clock=clock.monotonic, wall_clock=clock.now
        )

    return build


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def task(prompt: str = "Review the diff", **kw: Any) -> AITask:
    return AITask(id=kw.pop("id", "t1"), type=kw.pop("type", "code_review"), prompt=prompt, **kw)


# --- success ----------------------------------------------------------------------------------------


async def test_success_reports_text_usage_cost_model_and_session(cli: FakeCli, make: Make) -> None:
    usage = {
        "input_tokens": 12,
        "output_tokens": 40,
        "cache_read_input_tokens": 14135,
        "cache_creation_input_tokens": 7,
    }
    cli.scenario({"default": {"result": "LGTM", "usage": usage, "cost": 0.08424875}})
    response = await make().execute_task(task(), CTX)
    assert response.text == "LGTM"
    assert response.usage == TokenUsage(input=12, output=40, cache_read=14135, cache_write=7)
    # This machine's login: paid for by its subscription, so charged nothing; the CLI's figure is the list price.
    assert response.cost_usd == 0.0
    assert response.list_price_usd == pytest.approx(0.08424875)
    assert response.model == "claude-sonnet-4-5-20250929"
    assert response.subscription == "default"
    assert response.latency_ms > 0
    assert response.metadata["num_turns"] == 1
    assert response.metadata["duration_ms"] == 1234
    assert isinstance(response.metadata["session_id"], str) and response.metadata["session_id"]


@pytest.mark.parametrize(
    ("model", "per_million"),
    [
        ("claude-sonnet-4-5-20250929", (3.0, 15.0)),
        ("claude-opus-4-5-20251101", (5.0, 25.0)),
        ("claude-opus-4-1-20250805", (15.0, 75.0)),
        ("claude-opus-4-20250514", (15.0, 75.0)),
        ("claude-3-5-haiku-20241022", (0.8, 4.0)),
        ("claude-haiku-4-5-20251001", (1.0, 5.0)),
    ],
)
async def test_cost_falls_back_to_the_family_price_when_the_cli_reports_none(
    cli: FakeCli, make: Make, model: str, per_million: tuple[float, float]
) -> None:
    usage = {
        "input_tokens": 1000,
        "output_tokens": 2000,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }
    cli.scenario({"default": {"usage": usage, "cost": None, "model": model}})
    response = await make().execute_task(task(), CTX)
    assert response.list_price_usd == pytest.approx((1000 * per_million[0] + 2000 * per_million[1]) / 1_000_000)


async def test_json_output_format_reads_the_single_result_object(cli: FakeCli, make: Make) -> None:
    cli.scenario({"default": {"result": "from json"}})
    response = await make(output_format="json").execute_task(task(), CTX)
    assert response.text == "from json"
    argv = cli.calls()[0]["argv"]
    assert argv[argv.index("--output-format") + 1] == "json"
    assert "--verbose" not in argv


async def test_argv_carries_flags_model_turns_tools_and_runs_in_the_workdir(
    cli: FakeCli, make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "repo").mkdir()
    provider = make(
        model="opus",
        max_turns=5,
        append_system_prompt="Be brief.",
        allowed_tools=["Read", "Bash(git diff:*)"],
    )
    t = task("-starts with a dash", workdir="~/repo", context={"analyze": "three modules"})
    response = await provider.execute_task(t, CTX)
    call = cli.calls()[0]
    assert call["argv"] == [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        "opus",
        "--max-turns",
        "5",
        "--append-system-prompt",
        "Be brief.",
        "--allowedTools",
        "Read,Bash(git diff:*)",
        "--",
        render_prompt(t),
    ]
    assert os.path.realpath(call["cwd"]) == os.path.realpath(tmp_path / "repo")
    assert response.model == "claude-opus-4-5-20251101"  # the alias resolved by the CLI, read from modelUsage


async def test_a_prompt_too_long_for_argv_goes_through_stdin(cli: FakeCli, make: Make) -> None:
    await make().execute_task(task("x" * 150_000), CTX)
    call = cli.calls()[0]
    assert call["prompt_via_stdin"] is True
    assert call["prompt_len"] == 150_000
    assert call["argv"][-1] != "--"


async def test_missing_workdir_is_a_bad_request(cli: FakeCli, make: Make, tmp_path: Path) -> None:
    with pytest.raises(BadRequest):
        await make().execute_task(task(workdir=str(tmp_path / "nope")), CTX)
    assert cli.calls() == []


# --- environment per subscription ---------------------------------------------------------------------


async def test_config_dir_children_lose_every_credential_variable(cli: FakeCli, make: Make, tmp_path: Path) -> None:
    provider = make(subscriptions=config_dirs(tmp_path, "a"))
    await provider.execute_task(task(), CTX)
    call = cli.calls()[0]
    assert call["config_dir"] == str(tmp_path / "sub-a")
    assert call["has_api_key"] is False
    assert call["has_auth_token"] is False
    assert call["has_oauth_token"] is False
    assert call["auth_source"] == "login"  # the login stored in the config dir


async def test_api_key_subscription_gets_its_key_and_no_other_subscriptions(
    cli: FakeCli, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEY_C", SECRETS["KEY_C"])  # another subscription's variable, present in the parent
    cli.scenario({"api_key": {"result": "served with key B", "require_key_sha256": sha256(SECRETS["KEY_B"])}})
    subs = [{"name": "b", "api_key_env": "KEY_B"}, {"name": "c", "api_key_env": "KEY_C"}]
    response = await make(subscriptions=subs).execute_task(task(), ExecutionContext(subscription="b"))
    call = cli.calls()[0]
    assert response.subscription == "b"
    assert response.text == "served with key B"  # the fake checked the key by its hash
    assert call["has_api_key"] is True
    assert call["has_auth_token"] is False  # it would take precedence over the key
    assert "KEY_C" not in call["key_vars"]


async def test_default_subscription_bills_this_machines_login_not_an_exported_api_key(cli: FakeCli, make: Make) -> None:
    # The parent exports ANTHROPIC_API_KEY (e.g. for the `anthropic` provider) and ANTHROPIC_AUTH_TOKEN: in -p
    # mode the CLI would bill either instead of the subscription (PROVIDERS.md 1.5).
    await make().execute_task(task(), CTX)
    call = cli.calls()[0]
    assert (call["has_api_key"], call["has_auth_token"]) == (False, False)
    assert call["has_oauth_token"] is True  # `claude setup-token`'s subscription token is a login, kept
    assert call["auth_source"] == "CLAUDE_CODE_OAUTH_TOKEN"
    assert call["config_dir"] is None


async def test_default_subscription_with_api_key_env_gets_that_key_only(
    cli: FakeCli, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_CODE_USE_BEDROCK", "1")  # would win over the key
    cli.scenario({"api_key": {"result": "billed to KEY_B", "require_key_sha256": sha256(SECRETS["KEY_B"])}})
    response = await make(api_key_env="KEY_B").execute_task(task(), CTX)
    call = cli.calls()[0]
    assert response.text == "billed to KEY_B"
    assert call["auth_source"] == "ANTHROPIC_API_KEY"
    assert call["cloud_vars"] == [] and call["has_auth_token"] is False


CLOUD_ENV = {
    "CLAUDE_CODE_USE_BEDROCK": "1",
    "AWS_BEARER_TOKEN_BEDROCK": "bedrock-api-key-value-123456",
    "CLAUDE_CODE_USE_VERTEX": "1",
    "CLAUDE_CODE_USE_FOUNDRY": "1",
    "ANTHROPIC_FOUNDRY_API_KEY": "foundry-api-key-value-123456",
}


async def test_cloud_provider_variables_never_reach_a_subscription_child(
    cli: FakeCli, make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # First in the CLI's precedence: left in place, they would bill Bedrock/Vertex/Foundry instead of the
    # config dir's login or the subscription's key.
    for name, value in CLOUD_ENV.items():
        monkeypatch.setenv(name, value)
    cli.scenario({"api_key": {"require_key_sha256": sha256(SECRETS["KEY_B"])}})
    subs = [*config_dirs(tmp_path, "a"), {"name": "b", "api_key_env": "KEY_B"}]
    provider = make(subscriptions=subs)
    await provider.execute_task(task(), ExecutionContext(subscription="a"))
    await provider.execute_task(task(), ExecutionContext(subscription="b"))
    dir_call, key_call = cli.calls()
    assert (dir_call["cloud_vars"], dir_call["auth_source"]) == ([], "login")
    assert (key_call["cloud_vars"], key_call["auth_source"]) == ([], "ANTHROPIC_API_KEY")


async def test_missing_key_variable_fails_authentication_naming_it(cli: FakeCli, make: Make) -> None:
    provider = make(subscriptions=[{"name": "x", "api_key_env": "NOT_SET_ANYWHERE"}])
    with pytest.raises(AuthenticationFailed, match="NOT_SET_ANYWHERE") as info:
        await provider.execute_task(task(), CTX)
    assert info.value.subscription == "x"
    assert cli.calls() == []


@pytest.mark.parametrize(
    "sub",
    [{"name": "x"}, {"name": "x", "config_dir": "/a", "api_key_env": "K"}],
    ids=["neither", "both"],
)
def test_a_subscription_needs_exactly_one_credential_source(sub: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        ClaudeCliConfig(subscriptions=[sub])


def test_the_design_example_config_validates() -> None:
    config = ClaudeCliConfig.model_validate(
        {
            "type": "claude_cli",
            "priority": 1,
            "capabilities": ["code_review", "bug_fix"],
            "subscriptions": [
                {"name": "team-a", "config_dir": "~/.claude-team-a", "limits": {"requests_per_hour": 1000}},
                {"name": "team-b", "api_key_env": "ANTHROPIC_API_KEY_B", "limits": {"requests_per_hour": 500}},
            ],
        }
    )
    assert [s.limits.requests_per_hour for s in config.subscriptions] == [1000, 500]
    provider = ClaudeCliProvider("claude", config)
    [a, _] = provider.subscription_status()
    assert a.config_dir == os.path.expanduser("~/.claude-team-a")


def test_subscription_names_are_unique() -> None:
    with pytest.raises(ValidationError, match="unique"):
        ClaudeCliConfig(subscriptions=[{"name": "a", "config_dir": "/a"}, {"name": "a", "config_dir": "/b"}])


# --- failures -----------------------------------------------------------------------------------------


async def test_is_error_with_subtype_success_is_a_failure(cli: FakeCli, make: Make) -> None:
    cli.scenario({"default": {"kind": "api_error", "status": 500, "subtype": "success"}})
    with pytest.raises(Unavailable) as info:
        await make().execute_task(task(), CTX)
    assert info.value.error_type == "500"


@pytest.mark.parametrize(
    ("status", "error", "error_type"),
    [
        (429, RateLimited, "429"),
        (529, Overloaded, "529"),
        (500, Unavailable, "500"),
        (503, Unavailable, "503"),
        (401, AuthenticationFailed, "401"),
        (403, AuthenticationFailed, "403"),
        (400, BadRequest, "400"),
        (402, QuotaExhausted, "billing"),
        (404, BadRequest, "404"),
        (408, ProviderTimeout, "408"),
        (409, Unavailable, "409"),
        (422, BadRequest, "422"),
    ],
)
async def test_api_error_status_maps_to_the_error_hierarchy(
    cli: FakeCli, make: Make, status: int, error: type[ProviderError], error_type: str
) -> None:
    cli.scenario({"default": {"kind": "api_error", "status": status}})
    with pytest.raises(error) as info:
        await make().execute_task(task(), CTX)
    assert type(info.value) is error
    assert info.value.error_type == error_type
    assert info.value.subscription == "default"
    assert info.value.provider_id == "claude"


async def test_an_error_result_fails_even_when_the_cli_exits_0(cli: FakeCli, make: Make) -> None:
    # Success is read from the result object, never from the exit code (PROVIDERS.md 1.4).
    cli.scenario({"default": {"kind": "api_error", "status": 529, "exit_code": 0}})
    with pytest.raises(Overloaded):
        await make().execute_task(task(), CTX)


async def test_a_successful_result_succeeds_even_when_the_cli_exits_non_zero(cli: FakeCli, make: Make) -> None:
    cli.scenario({"default": {"result": "done anyway", "exit_code": 1}})
    response = await make().execute_task(task(), CTX)
    assert response.text == "done anyway"


async def test_credit_balance_too_low_is_quota_exhausted_whatever_the_status(cli: FakeCli, make: Make) -> None:
    message = (
        'API Error: 400 {"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance '
        'is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}'
    )
    cli.scenario({"default": {"kind": "api_error", "status": 400, "message": message}})
    with pytest.raises(QuotaExhausted) as info:
        await make().execute_task(task(), CTX)
    assert info.value.error_type == "credit_balance"
    assert info.value.failover_helps and not info.value.retry_helps


async def test_older_clis_without_api_error_status_are_classified_by_text(cli: FakeCli, make: Make) -> None:
    message = 'API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    cli.scenario({"default": {"kind": "api_error", "status": 529, "include_status": False, "message": message}})
    with pytest.raises(Overloaded):
        await make().execute_task(task(), CTX)


async def test_max_turns_is_a_bad_request_that_failover_cannot_fix(cli: FakeCli, make: Make) -> None:
    cli.scenario({"default": {"kind": "max_turns", "num_turns": 6}})
    with pytest.raises(BadRequest) as info:
        await make(max_turns=5).execute_task(task(), CTX)
    assert info.value.error_type == "max_turns"
    assert info.value.failover_helps is False


# --- failed calls that still cost money -------------------------------------------------------------


async def test_max_turns_error_carries_the_usage_cost_and_model_of_the_turns_it_ran(cli: FakeCli, make: Make) -> None:
    usage = {
        "input_tokens": 310,
        "output_tokens": 95,
        "cache_read_input_tokens": 20000,
        "cache_creation_input_tokens": 900,
    }
    cli.scenario({"default": {"kind": "max_turns", "num_turns": 6, "usage": usage, "cost": 0.0512}})
    provider = make(max_turns=5)
    with pytest.raises(BadRequest) as info:
        await provider.execute_task(task(), CTX)
    error = info.value
    assert error.usage == TokenUsage(input=310, output=95, cache_read=20000, cache_write=900)
    assert (error.cost_usd, error.list_price_usd) == (0.0, pytest.approx(0.0512))
    assert error.model == "claude-sonnet-4-5-20250929"
    # The subscription's counters saw the spend too.
    [status] = provider.subscription_status()
    assert status.cost_usd == pytest.approx(0.0512) and status.tokens == 310 + 95 + 20000 + 900


async def test_api_error_after_some_turns_carries_what_they_cost(cli: FakeCli, make: Make) -> None:
    usage = {"input_tokens": 40, "output_tokens": 12, "cache_read_input_tokens": 500, "cache_creation_input_tokens": 0}
    cli.scenario({"default": {"kind": "api_error", "status": 529, "num_turns": 3, "usage": usage, "cost": 0.0031}})
    with pytest.raises(Overloaded) as info:
        await make(model="opus").execute_task(task(), CTX)
    assert info.value.usage == TokenUsage(input=40, output=12, cache_read=500)
    assert (info.value.cost_usd, info.value.list_price_usd) == (0.0, pytest.approx(0.0031))
    assert info.value.model == "claude-opus-4-5-20251101"


async def test_failed_call_without_reported_cost_is_priced_from_its_usage(cli: FakeCli, make: Make) -> None:
    usage = {"input_tokens": 1000, "output_tokens": 100, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    cli.scenario({"default": {"kind": "max_turns", "usage": usage, "cost": None}})
    with pytest.raises(BadRequest) as info:
        await make().execute_task(task(), CTX)
    assert info.value.list_price_usd == pytest.approx((1000 * 3.0 + 100 * 15.0) / 1e6)  # Sonnet's price


async def test_usage_limit_error_costs_nothing(cli: FakeCli, make: Make) -> None:
    cli.scenario({"default": {"kind": "usage_limit"}})
    with pytest.raises(QuotaExhausted) as info:
        await make().execute_task(task(), CTX)
    assert info.value.cost_usd == 0.0
    assert info.value.usage is not None and info.value.usage.total == 0


async def test_non_json_output_is_malformed(cli: FakeCli, make: Make) -> None:
    cli.scenario({"default": {"kind": "garbage"}})
    with pytest.raises(MalformedResponse):
        await make().execute_task(task(), CTX)


async def test_nonzero_exit_without_a_result_is_unavailable_with_the_stderr_tail(cli: FakeCli, make: Make) -> None:
    cli.scenario({"default": {"kind": "exit_silent", "exit_code": 3, "stderr": "node: cannot find module"}})
    with pytest.raises(Unavailable, match="cannot find module") as info:
        await make().execute_task(task(), CTX)
    assert info.value.error_type == "exit_status"


async def test_zero_exit_without_a_result_is_malformed(cli: FakeCli, make: Make) -> None:
    cli.scenario({"default": {"kind": "exit_silent", "exit_code": 0}})
    with pytest.raises(MalformedResponse):
        await make().execute_task(task(), CTX)


async def test_plain_text_usage_limit_is_still_recognised(cli: FakeCli, make: Make, clock: FakeClock) -> None:
    epoch = int(clock.now().timestamp()) + 600
    cli.scenario({"default": {"kind": "plain_text", "message": f"Claude AI usage limit reached|{epoch}"}})
    with pytest.raises(QuotaExhausted) as info:
        await make().execute_task(task(), CTX)
    assert info.value.error_type == "usage_limit"
    assert info.value.reset_at is not None and int(info.value.reset_at.timestamp()) == epoch


async def test_timeout_kills_the_cli_and_the_tools_it_started(cli: FakeCli, make: Make) -> None:
    cli.scenario({"default": {"kind": "sleep", "sleep_s": 60, "spawn_grandchild": True}})
    with pytest.raises(ProviderTimeout) as info:
        await make(timeout_s=1.5).execute_task(task(), CTX)
    assert info.value.error_type == "timeout"
    [call] = cli.calls()
    assert wait_dead(call["pid"])
    [grandchild] = cli.grandchildren()
    assert wait_dead(grandchild)


async def test_the_context_timeout_overrides_the_config(cli: FakeCli, make: Make) -> None:
    cli.scenario({"default": {"kind": "sleep", "sleep_s": 60}})
    with pytest.raises(ProviderTimeout, match=r"1\.5s"):
        await make(timeout_s=300).execute_task(task(), ExecutionContext(timeout_s=1.5))
    assert wait_dead(cli.calls()[0]["pid"])


async def _started(cli: FakeCli, pending: asyncio.Task[Any]) -> None:
    for _ in range(200):
        if cli.grandchildren() or pending.done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the fake CLI never started")


async def test_cancellation_kills_the_process_group_and_propagates(cli: FakeCli, make: Make) -> None:
    cli.scenario({"default": {"kind": "sleep", "sleep_s": 60, "spawn_grandchild": True}})
    provider = make()
    pending = asyncio.create_task(provider.execute_task(task(), CTX))
    await _started(cli, pending)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert wait_dead(cli.calls()[0]["pid"])
    assert wait_dead(cli.grandchildren()[0])
    assert provider.subscription_status()[0].last_outcome == "cancelled"


async def test_aclose_kills_live_children(cli: FakeCli, make: Make) -> None:
    cli.scenario({"default": {"kind": "sleep", "sleep_s": 60, "spawn_grandchild": True}})
    provider = make()
    pending = asyncio.create_task(provider.execute_task(task(), CTX))
    await _started(cli, pending)
    await provider.aclose()
    with pytest.raises(Cancelled):
        await pending
    assert wait_dead(cli.calls()[0]["pid"])
    assert wait_dead(cli.grandchildren()[0])


# --- availability and health ----------------------------------------------------------------------------


async def test_missing_executable_is_unavailable_everywhere(make: Make, tmp_path: Path) -> None:
    provider = make(executable=str(tmp_path / "no-such-claude"))
    assert provider.capabilities().available is False
    assert (await provider.health()).status is HealthStatus.UNHEALTHY
    with pytest.raises(Unavailable, match="not found"):
        await provider.execute_task(task(), CTX)


async def test_health_runs_version_and_reports_healthy(cli: FakeCli, make: Make) -> None:
    provider = make(capabilities=["code_review"])
    health = await provider.health()
    assert health.status is HealthStatus.HEALTHY
    assert "Claude Code" in health.detail
    caps = provider.capabilities()
    assert caps.available and caps.supports_workdir and caps.task_types == frozenset({"code_review"})


async def test_a_broken_install_is_unhealthy(cli: FakeCli, make: Make) -> None:
    cli.scenario({"version_exit_code": 1})
    health = await make().health()
    assert health.status is HealthStatus.UNHEALTHY
    assert "broken install" in health.detail


async def test_execute_batch_runs_at_most_max_concurrency_clis_at_once(cli: FakeCli, make: Make) -> None:
    cli.scenario({"default": {"hold_s": 0.5}})
    results = await make(max_concurrency=3).execute_batch([task(id=f"t{i}") for i in range(10)], CTX)
    assert [type(r).__name__ for r in results] == ["ProviderResponse"] * 10
    assert cli.max_in_flight() == 3  # concurrent, and bounded


# --- secrets --------------------------------------------------------------------------------------------


def windows(secret: str, size: int = 8) -> list[str]:
    """Every `size`-character piece of a secret: none may appear in text we store."""
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


async def test_a_key_straddling_the_quoting_limit_leaks_no_part_of_itself(cli: FakeCli, make: Make) -> None:
    key = SECRETS["KEY_GW"]
    # The error text is quoted up to 300 characters: these put the key across that boundary, at the start of the
    # result text and at the end of the stderr tail.
    cli.scenario(
        {
            "api_key": [
                {"kind": "api_error", "status": 500, "message": "x" * 280 + key + " tail"},
                {"kind": "exit_silent", "exit_code": 1, "stderr": "head " + key + "y" * 280},
            ]
        }
    )
    provider = make(subscriptions=[{"name": "gw", "api_key_env": "KEY_GW"}])
    for _ in range(2):
        with pytest.raises(ProviderError) as info:
            await provider.execute_task(task(), CTX)
        text = f"{info.value} {info.value.args}"
        assert [w for w in windows(key) if w in text] == []
        assert "***" in text


async def test_no_secret_value_reaches_errors_status_or_logs(
    cli: FakeCli, make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    leak = f"API Error: 401 invalid x-api-key {SECRETS['KEY_B']}"
    cli.scenario(
        {
            "api_key": [
                {"kind": "exit_silent", "echo_api_key": True},
                {"kind": "api_error", "status": 401, "message": leak},
            ]
        }
    )
    provider = make(subscriptions=[{"name": "b", "api_key_env": "KEY_B"}])
    errors = []
    for _ in range(2):
        with pytest.raises(ProviderError) as info:
            await provider.execute_task(task(), CTX)
        errors.append(info.value)
    for error in errors:
        text = f"{error} {error!r} {error.message} {error.args}"
        assert SECRETS["KEY_B"] not in text
        assert "***" in text
    assert SECRETS["KEY_B"] not in provider.subscription_status()[0].model_dump_json()
    assert SECRETS["KEY_B"] not in caplog.text
    assert PARENT_KEY not in caplog.text
