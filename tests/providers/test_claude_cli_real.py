"""`claude_cli` against the real Claude Code CLI (npm, pinned in tests/fakes/real_claude.py), offline, pointed
by ANTHROPIC_BASE_URL at the Messages API stand-in (tests/fakes/fake_messages_api.py).

One subscription per case, logged in either way: a config-dir login (`.credentials.json`, sent as a bearer
token) or an API key (`x-api-key`). Tests count the requests each credential received and where the CLI was
stopped, never how long anything took.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from providers import (
    AITask,
    AuthenticationFailed,
    ExecutionContext,
    Overloaded,
    ProviderError,
    QuotaExhausted,
    QuotaSignal,
    RateLimited,
)
from providers.claude_cli import ClaudeCliConfig, ClaudeCliProvider
from tests.fakes.fake_messages_api import ANSWER, FakeMessagesApi, Mode
from tests.fakes.real_claude import offline_env, write_login

pytestmark = pytest.mark.slow

TOKEN = "sk-ant-oat01-REAL-CLI-LOGIN-TOKEN-0123456789"
KEY = "sk-ant-api03-REAL-CLI-API-KEY-9876543210"
ROUTED = ExecutionContext(retry_max_s=5.0)  # what the router passes with its default failover settings
Make = Callable[..., tuple[ClaudeCliProvider, list[QuotaSignal]]]


@pytest.fixture
def api() -> Iterator[FakeMessagesApi]:
    with FakeMessagesApi() as server:
        yield server


@pytest.fixture
def make(real_claude: Path, api: FakeMessagesApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Make:
    for name in [n for n in os.environ if n.startswith(("ANTHROPIC_", "CLAUDE_"))]:
        monkeypatch.delenv(name)
    for name, value in offline_env(api.url, tmp_path / "home").items():
        monkeypatch.setenv(name, value)

    def build(kind: str, mode: Mode, **config: object) -> tuple[ClaudeCliProvider, list[QuotaSignal]]:
        if kind == "login":
            write_login(tmp_path / "login", TOKEN)
            sub = {"name": "sub", "config_dir": str(tmp_path / "login")}
            api.modes[TOKEN] = mode
        else:
            sub = {"name": "sub", "api_key_env": "REAL_CLI_KEY"}
            api.modes[KEY] = mode
        cfg = ClaudeCliConfig(executable=str(real_claude), subscriptions=[sub], timeout_s=90, **config)
        provider = ClaudeCliProvider("claude", cfg, secrets={"REAL_CLI_KEY": KEY}.get)
        signals: list[QuotaSignal] = []
        provider.add_quota_listener(signals.append)
        return provider, signals

    return build


def task() -> AITask:
    return AITask(id="t", type="code_review", prompt="Say something.")


async def failure(provider: ClaudeCliProvider) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await provider.execute_task(task(), ROUTED)
    return info.value


def credential(kind: str) -> str:
    return TOKEN if kind == "login" else KEY


@pytest.mark.parametrize("kind", ["login", "key"])
async def test_each_way_of_logging_in_reaches_the_api_with_its_own_credential(
    make: Make, api: FakeMessagesApi, kind: str
) -> None:
    provider, _ = make(kind, "ok")
    response = await provider.execute_task(task(), ROUTED)
    assert response.text == ANSWER and response.subscription == "sub"
    assert (response.usage.input, response.usage.output) == (42, 7)
    if kind == "login":  # paid for by the subscription's fee: charged nothing at the margin, its list price kept
        assert response.cost_usd == 0 and response.list_price_usd and response.list_price_usd > 0
    else:
        assert response.cost_usd > 0 and response.list_price_usd is None
    posts = [r for r in api.requests if r.path == "/v1/messages"]
    assert [(r.credential, r.scheme, r.streamed) for r in posts] == [
        (credential(kind), "bearer" if kind == "login" else "x-api-key", True)
    ]


async def test_a_login_at_its_usage_limit_is_quota_exhausted_with_its_reset(make: Make, api: FakeMessagesApi) -> None:
    provider, signals = make("login", "usage_limit")
    error = await failure(provider)
    assert isinstance(error, QuotaExhausted) and error.error_type == "usage_limit"
    assert error.subscription == "sub"
    assert api.messages(TOKEN) == 1
    rejected = [s for s in signals if s.status == "rejected" and s.subscription == "sub"]
    assert rejected and int(rejected[0].reset_at.timestamp()) == api.reset_at  # type: ignore[union-attr]


async def test_a_warned_login_serves_and_reports_the_warning(make: Make, api: FakeMessagesApi) -> None:
    provider, signals = make("login", "allowed_warning")
    assert (await provider.execute_task(task(), ROUTED)).text == ANSWER
    warned = [(s.status, s.limit_kind, s.utilization) for s in signals if s.status == "allowed_warning"]
    assert warned == [("allowed_warning", "five_hour", 0.92)]
    assert {s.name: s.state for s in provider.subscription_status()} == {"sub": "warning"}


@pytest.mark.parametrize("kind", ["login", "key"])
async def test_a_refused_credential_stops_the_cli_at_its_first_retry(
    make: Make, api: FakeMessagesApi, kind: str
) -> None:
    provider, _ = make(kind, "unauthorized")
    error = await failure(provider)
    assert isinstance(error, AuthenticationFailed) and error.error_type == "401"
    assert api.messages(credential(kind)) == 1
    assert [(s.state, s.out_reason) for s in provider.subscription_status()] == [("out", "authentication")]


async def test_an_api_key_rate_limited_for_30s_stops_the_cli_at_its_first_retry(
    make: Make, api: FakeMessagesApi
) -> None:
    provider, _ = make("key", "rate_limited")
    error = await failure(provider)
    assert isinstance(error, RateLimited) and error.retry_after_s == 30.0
    assert api.messages(KEY) == 1


async def test_a_rate_limited_login_is_not_retried_by_the_cli_and_rotates(make: Make, api: FakeMessagesApi) -> None:
    # A subscription login's 429 is not retried by the CLI (2.1.197): a `rejected` event and an error result.
    provider, signals = make("login", "rate_limited")
    error = await failure(provider)
    assert isinstance(error, RateLimited) and error.subscription == "sub"
    assert api.messages(TOKEN) == 1
    assert any(s.status == "rejected" for s in signals)


async def test_an_overloaded_api_gets_the_retry_budget_then_the_cli_is_stopped(
    make: Make, api: FakeMessagesApi
) -> None:
    # The CLI's delays grow 0.5, 1, 2 s (+ up to 25% jitter): a 2 s budget allows two retries, not a third.
    provider, _ = make("login", "overloaded", overload_retry_budget_s=2)
    error = await failure(provider)
    assert isinstance(error, Overloaded) and error.error_type == "529"
    assert api.messages(TOKEN) == 3


async def test_check_tells_per_subscription_whether_its_login_or_key_is_accepted(
    real_claude: Path, api: FakeMessagesApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith(("ANTHROPIC_", "CLAUDE_"))]:
        monkeypatch.delenv(name)
    for name, value in offline_env(api.url, tmp_path / "home").items():
        monkeypatch.setenv(name, value)
    tokens = {"good": TOKEN, "refused": "sk-ant-oat01-REFUSED-LOGIN-00000000", "limited": "sk-ant-oat01-LIMITED-1111"}
    for name, token in tokens.items():
        write_login(tmp_path / name, token)
    (tmp_path / "nobody").mkdir()
    api.modes.update({TOKEN: "ok", tokens["refused"]: "unauthorized", tokens["limited"]: "usage_limit"})
    api.modes[KEY] = "rate_limited"
    subs = [{"name": n, "config_dir": str(tmp_path / n)} for n in ("good", "refused", "limited", "nobody")]
    subs += [{"name": "key", "api_key_env": "REAL_CLI_KEY"}, {"name": "unset", "api_key_env": "NO_SUCH_KEY"}]
    cfg = ClaudeCliConfig(executable=str(real_claude), subscriptions=subs, timeout_s=90)
    provider = ClaudeCliProvider("claude", cfg, secrets={"REAL_CLI_KEY": KEY}.get)
    checks = {c.name: c for c in await provider.check_subscriptions()}
    assert {n: (c.verdict, c.asked_api) for n, c in checks.items()} == {
        "good": ("accepted", True),
        "refused": ("refused", True),
        "limited": ("limited", True),
        "nobody": ("not_logged_in", False),
        "key": ("rate_limited", True),
        "unset": ("missing_key", False),
    }
    # The reset as the CLI words it ("resets 6:23pm (UTC)"), to the minute.
    assert 0 <= api.reset_at - checks["limited"].reset_at.timestamp() < 60  # type: ignore[union-attr]
    # One request per credential that had to be asked, each stopped at the CLI's first retry.
    assert [api.messages(t) for t in (TOKEN, tokens["refused"], tokens["limited"], KEY)] == [1, 1, 1, 1]
    assert all(c not in checks[n].detail for n in checks for c in (*tokens.values(), KEY))
