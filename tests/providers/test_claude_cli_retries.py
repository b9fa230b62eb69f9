"""`claude_cli` acts on the CLI's own retries (`api_retry` lines) as they arrive, and on changed credentials.

The fake CLI prints `api_retry` lines as the real one (2.1.197) does and sleeps the announced delay (scaled)
before its next request, logging each request; tests count requests and where the CLI was stopped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from providers import (
    AITask,
    AuthenticationFailed,
    ExecutionContext,
    Overloaded,
    QuotaSignal,
    RateLimited,
    Unavailable,
)
from providers.claude_cli import ClaudeCliConfig, ClaudeCliProvider
from providers.models import CREDENTIALS_CHANGED
from tests.fakes.claude_harness import SECRETS, FakeCli, FakeClock, config_dirs, install_fake, pid_alive

Make = Callable[..., ClaudeCliProvider]
# What the router passes with the default failover settings.
ROUTED = ExecutionContext(retry_max_s=5.0)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCli:
    return install_fake(tmp_path / "fake", monkeypatch)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make(clock: FakeClock, tmp_path: Path) -> Make:
    def build(names: str = "ab", **config: Any) -> ClaudeCliProvider:
        # A generous timeout: a CLI that is not stopped at the right line fails the test as a timeout.
        return ClaudeCliProvider(
            "claude",
            ClaudeCliConfig(subscriptions=config_dirs(tmp_path, *names), timeout_s=60, **config),
            secrets=SECRETS.get,
            clock=clock.monotonic,
            wall_clock=clock.now,
        )

    return build


def task(i: int = 0) -> AITask:
    return AITask(id=f"t{i}", type="code_review", prompt=f"task {i}")


def troubled_a(cli: FakeCli, **step: Any) -> None:
    cli.scenario({"by_config_dir": {"sub-a": {"kind": "api_retry", **step}, "sub-b": {"result": "fine"}}})


def states(provider: ClaudeCliProvider) -> dict[str, tuple[str, str | None]]:
    return {s.name: (s.state, s.out_reason) for s in provider.subscription_status()}


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_credential_stops_the_cli_at_its_first_retry_and_takes_the_subscription_out(
    cli: FakeCli, make: Make, clock: FakeClock, status: int
) -> None:
    troubled_a(cli, status=status)
    provider = make()
    with pytest.raises(AuthenticationFailed) as info:
        await provider.execute_task(task(), ROUTED)
    error = info.value
    assert (error.subscription, error.error_type, error.retry_after_s) == ("a", str(status), 300.0)
    assert error.reset_at == clock.now() + timedelta(seconds=300)
    assert cli.requests() == {"config_dir:sub-a": 1}  # stopped at its first api_retry line
    assert not pid_alive(cli.calls()[0]["pid"])
    assert states(provider)["a"] == ("out", "authentication")
    # The next call goes to the other subscription without asking "a" again.
    assert (await provider.execute_task(task(1), ROUTED)).subscription == "b"
    assert cli.requests() == {"config_dir:sub-a": 1}


async def test_a_refused_subscription_is_retried_after_auth_reprobe_s(
    cli: FakeCli, make: Make, clock: FakeClock
) -> None:
    troubled_a(cli, status=401)
    provider = make("a", auth_reprobe_s=60)
    with pytest.raises(AuthenticationFailed):
        await provider.execute_task(task(), ROUTED)
    clock.advance(59)
    assert states(provider)["a"][0] == "out"
    clock.advance(2)
    assert states(provider)["a"][0] == "probe_due"


async def test_a_rate_limit_asking_longer_than_retry_max_s_stops_the_cli_at_once(
    cli: FakeCli, make: Make, clock: FakeClock
) -> None:
    troubled_a(cli, status=429, retry_after_s=30)
    provider = make()
    with pytest.raises(RateLimited) as info:
        await provider.execute_task(task(), ROUTED)
    assert (info.value.subscription, info.value.retry_after_s) == ("a", 30.0)
    assert cli.requests() == {"config_dir:sub-a": 1}
    assert states(provider)["a"] == ("out", "rate_limited")
    clock.advance(31)
    assert states(provider)["a"][0] == "probe_due"


async def test_raising_retry_max_s_lets_the_cli_wait_out_the_same_rate_limit(cli: FakeCli, make: Make) -> None:
    # The one short-retry threshold comes from routing: with 60 s a 30 s retry-after is short, and with the
    # budget to match the CLI is left to retry (the fake sleeps 30 s x 0.001) and succeeds.
    troubled_a(cli, status=429, retry_after_s=30, retries=1, then="success", delay_scale=0.001)
    provider = make(overload_retry_budget_s=60)
    response = await provider.execute_task(task(), ExecutionContext(retry_max_s=60.0))
    assert response.subscription == "a"
    assert cli.requests() == {"config_dir:sub-a": 2}


async def test_an_overloaded_api_gets_the_retry_budget_then_the_cli_is_stopped(cli: FakeCli, make: Make) -> None:
    # Announced delays 0.525, 1.05, 2.1, 4.2 s: the first three fit a 5 s budget, the fourth does not.
    troubled_a(cli, status=529, delay_scale=0.01)
    with pytest.raises(Overloaded) as info:
        await make().execute_task(task(), ROUTED)
    assert (info.value.error_type, info.value.subscription) == ("529", "a")
    assert cli.requests() == {"config_dir:sub-a": 4}


@pytest.mark.parametrize(("budget", "requests"), [(0, 1), (1.0, 2), (2.0, 3)])
async def test_the_retry_budget_is_a_config_key(cli: FakeCli, make: Make, budget: float, requests: int) -> None:
    troubled_a(cli, status=500, delay_scale=0.01)
    with pytest.raises(Overloaded) as info:
        await make(overload_retry_budget_s=budget).execute_task(task(), ROUTED)
    assert info.value.error_type == "500"
    assert cli.requests() == {"config_dir:sub-a": requests}


async def test_an_overload_that_clears_within_the_budget_succeeds(cli: FakeCli, make: Make) -> None:
    troubled_a(cli, status=529, retries=2, then="success", delay_scale=0.01)
    response = await make().execute_task(task(), ROUTED)
    assert response.subscription == "a" and response.text == "Fake answer to: task 0"
    assert cli.requests() == {"config_dir:sub-a": 3}


async def test_no_connection_is_unavailable_once_the_budget_is_spent(cli: FakeCli, make: Make) -> None:
    troubled_a(cli, status=None, delay_scale=0.01)
    with pytest.raises(Unavailable) as info:
        await make(overload_retry_budget_s=0).execute_task(task(), ROUTED)
    assert info.value.error_type == "connection"


async def test_json_output_prints_no_retry_lines_so_the_cli_runs_its_own_loop(cli: FakeCli, make: Make) -> None:
    troubled_a(cli, status=401, retries=2, delay_scale=0.01)
    with pytest.raises(AuthenticationFailed):
        await make(output_format="json").execute_task(task(), ROUTED)
    assert cli.requests() == {"config_dir:sub-a": 3}  # its result after giving up is what tells


async def test_a_new_login_in_the_config_dir_puts_a_refused_subscription_back_at_once(
    cli: FakeCli, make: Make, tmp_path: Path
) -> None:
    provider = make()
    creds = tmp_path / "sub-a" / ".credentials.json"
    creds.write_text(json.dumps({"claudeAiOauth": {"accessToken": "old", "expiresAt": 4102444800000}}))
    troubled_a(cli, status=401)
    signals: list[QuotaSignal] = []
    provider.add_quota_listener(signals.append)
    with pytest.raises(AuthenticationFailed):
        await provider.execute_task(task(), ROUTED)
    assert (await provider.execute_task(task(1), ROUTED)).subscription == "b"  # nothing changed: "a" stays out
    creds.write_text(json.dumps({"claudeAiOauth": {"accessToken": "new-login", "expiresAt": 4102444800000}}))
    cli.scenario({"by_config_dir": {"sub-a": {"result": "back"}, "sub-b": {"result": "fine"}}})
    assert states(provider)["a"] == ("out", "authentication")  # until the provider looks
    assert (await provider.execute_task(task(2), ROUTED)).subscription == "a"
    assert [(s.subscription, s.limit_kind, s.status) for s in signals if s.limit_kind == CREDENTIALS_CHANGED] == [
        ("a", CREDENTIALS_CHANGED, "allowed")
    ]


async def test_a_new_key_value_puts_a_refused_api_key_subscription_back(
    cli: FakeCli, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = {"KEY_A": "sk-ant-api03-OLD-KEY-0000000000"}
    cli.scenario({"api_key": [{"kind": "api_retry", "status": 401}, {"result": "accepted"}]})
    provider = ClaudeCliProvider(
        "claude",
        ClaudeCliConfig(subscriptions=[{"name": "a", "api_key_env": "KEY_A"}], timeout_s=60),
        secrets=keys.get,
        clock=clock.monotonic,
        wall_clock=clock.now,
    )
    with pytest.raises(AuthenticationFailed) as info:
        await provider.execute_task(task(), ROUTED)
    assert keys["KEY_A"] not in str(info.value)
    assert states(provider)["a"] == ("out", "authentication")
    await provider.health(use_cache=False)  # a health check sees no change
    assert states(provider)["a"][0] == "out"
    keys["KEY_A"] = "sk-ant-api03-NEW-KEY-1111111111"
    await provider.health(use_cache=False)  # ... and sees this one
    assert states(provider)["a"] == ("available", None)
    assert (await provider.execute_task(task(1), ROUTED)).text == "accepted"
