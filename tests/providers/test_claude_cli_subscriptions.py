"""`claude_cli` subscriptions: rotation, usage limits and re-probing, rate-limit events, affinity, client limits."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

# pytest puts only this folder on sys.path and `tests` is not installed; make `tests.fakes` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from providers import AITask, BadRequest, ExecutionContext, HealthStatus, QuotaExhausted, QuotaSignal
from providers.claude_cli import ClaudeCliConfig, ClaudeCliProvider
from tests.fakes.claude_harness import SECRETS, FakeCli, FakeClock, config_dirs, install_fake

Make = Callable[..., ClaudeCliProvider]
CTX = ExecutionContext()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCli:
    return install_fake(tmp_path / "fake", monkeypatch)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make(clock: FakeClock, tmp_path: Path) -> Make:
    def build(names: str = "abc", limits: dict[str, dict[str, Any]] | None = None, **config: Any) -> ClaudeCliProvider:
        subs = config_dirs(tmp_path, *names)
        for sub in subs:
            sub["limits"] = (limits or {}).get(sub["name"], {})
        return ClaudeCliProvider(
            "claude",
            ClaudeCliConfig(subscriptions=subs, **config),
            secrets=SECRETS.get,
            clock=clock.monotonic,
            wall_clock=clock.now,
        )

    return build


def task(i: int = 0, **kw: Any) -> AITask:
    return AITask(id=f"t{i}", type="code_review", prompt=f"task {i}", **kw)


def served_by(cli: FakeCli) -> list[str]:
    """The subscription (config dir name minus "sub-") of each CLI run so far."""
    return [os.path.basename(c["config_dir"]).removeprefix("sub-") for c in cli.calls()]


async def run(provider: ClaudeCliProvider, n: int, **kw: Any) -> list[str]:
    return [(await provider.execute_task(task(i, **kw), CTX)).subscription or "" for i in range(n)]


def states(provider: ClaudeCliProvider) -> dict[str, str]:
    return {s.name: s.state for s in provider.subscription_status()}


def epoch_in(clock: FakeClock, seconds: float) -> int:
    return int((clock.now() + timedelta(seconds=seconds)).timestamp())


# --- rotation -------------------------------------------------------------------------------------------


async def test_rotation_goes_round_robin_across_three_subscriptions(cli: FakeCli, make: Make) -> None:
    assert await run(make(), 6) == ["a", "b", "c", "a", "b", "c"]
    assert served_by(cli) == ["a", "b", "c", "a", "b", "c"]


async def test_a_forced_subscription_serves_the_call(cli: FakeCli, make: Make) -> None:
    provider = make()
    response = await provider.execute_task(task(), ExecutionContext(subscription="c"))
    assert response.subscription == "c"
    with pytest.raises(BadRequest, match="unknown subscription"):
        await provider.execute_task(task(), ExecutionContext(subscription="zzz"))


async def test_affinity_keeps_a_key_on_the_subscription_that_served_it(cli: FakeCli, make: Make) -> None:
    provider = make()
    first = await provider.execute_task(task(1, affinity="repo-1"), CTX)
    other = await provider.execute_task(task(2, affinity="repo-2"), CTX)
    again = [(await provider.execute_task(task(3, affinity="repo-1"), CTX)).subscription for _ in range(3)]
    assert (first.subscription, other.subscription) == ("a", "b")
    assert again == ["a", "a", "a"]
    by_session = await provider.execute_task(task(4, metadata={"session_id": "repo-2"}), CTX)
    assert by_session.subscription == "b"


async def test_affinity_gives_way_when_its_subscription_is_out(cli: FakeCli, make: Make, clock: FakeClock) -> None:
    provider = make()
    await provider.execute_task(task(1, affinity="k"), CTX)  # served by a
    cli.scenario({"by_config_dir": {"sub-a": {"kind": "usage_limit", "message": "You've hit your limit"}}})
    with pytest.raises(QuotaExhausted):
        await provider.execute_task(task(2), ExecutionContext(subscription="a"))
    assert (await provider.execute_task(task(2, affinity="k"), CTX)).subscription != "a"


# --- usage limits -----------------------------------------------------------------------------------------


async def test_legacy_usage_limit_takes_one_subscription_out_until_its_reset_then_reprobes(
    cli: FakeCli, make: Make, clock: FakeClock
) -> None:
    epoch = epoch_in(clock, 3600)
    limit = {"kind": "usage_limit", "message": f"Claude AI usage limit reached|{epoch}"}
    cli.scenario({"by_config_dir": {"sub-a": [limit, {"result": "a is back"}]}})
    provider = make()
    with pytest.raises(QuotaExhausted) as info:
        await provider.execute_task(task(), CTX)
    error = info.value
    assert (error.error_type, error.subscription) == ("usage_limit", "a")
    assert error.reset_at == datetime.fromtimestamp(epoch, UTC)
    assert states(provider)["a"] == "out"

    assert await run(provider, 4) == ["b", "c", "b", "c"]
    clock.advance(3601)
    assert states(provider)["a"] == "probe_due"
    assert await run(provider, 3) == ["a", "b", "c"]  # the trial call succeeded: a is back in rotation
    assert states(provider)["a"] == "available"
    assert served_by(cli).count("a") == 2  # the call that hit the limit and the trial


async def test_newer_usage_limit_wording_parses_the_local_reset_time(
    cli: FakeCli, make: Make, clock: FakeClock
) -> None:
    # The clock reads 2026-03-02 15:00 UTC, which is 10:00 in New York (EST, UTC-5).
    message = "You've hit your limit · resets 10pm (America/New_York)"
    cli.scenario({"by_config_dir": {"sub-a": {"kind": "usage_limit", "message": message}}})
    provider = make()
    with pytest.raises(QuotaExhausted) as info:
        await provider.execute_task(task(), CTX)
    assert info.value.reset_at == datetime(2026, 3, 3, 3, 0, tzinfo=UTC)
    [status] = [s for s in provider.subscription_status() if s.name == "a"]
    assert (status.state, status.out_reason, status.reset_at) == ("out", "usage_limit", info.value.reset_at)
    clock.advance(12 * 3600 - 1)
    assert states(provider)["a"] == "out"
    clock.advance(2)
    assert states(provider)["a"] == "probe_due"


async def test_a_failed_trial_puts_the_subscription_back_out(cli: FakeCli, make: Make, clock: FakeClock) -> None:
    first, second = epoch_in(clock, 600), epoch_in(clock, 7200)
    cli.scenario(
        {
            "by_config_dir": {
                "sub-a": [
                    {"kind": "usage_limit", "message": f"Claude AI usage limit reached|{first}"},
                    {"kind": "usage_limit", "message": f"Claude AI usage limit reached|{second}"},
                ]
            }
        }
    )
    provider = make(names="ab")
    with pytest.raises(QuotaExhausted):
        await provider.execute_task(task(), CTX)
    clock.advance(601)
    await provider.execute_task(task(), CTX)  # b (the cursor moved past a)
    with pytest.raises(QuotaExhausted) as info:
        await provider.execute_task(task(), CTX)  # a's trial call
    assert info.value.reset_at == datetime.fromtimestamp(second, UTC)
    assert states(provider)["a"] == "out"
    assert await run(provider, 2) == ["b", "b"]


async def test_only_one_trial_call_runs_while_a_subscription_is_being_reprobed(
    cli: FakeCli, make: Make, clock: FakeClock
) -> None:
    epoch = epoch_in(clock, 60)
    cli.scenario(
        {
            "by_config_dir": {
                "sub-a": [
                    {"kind": "usage_limit", "message": f"Claude AI usage limit reached|{epoch}"},
                    {"kind": "sleep", "sleep_s": 0.5},
                ]
            }
        }
    )
    provider = make(names="ab", output_format="stream-json")
    with pytest.raises(QuotaExhausted):
        await provider.execute_task(task(), CTX)
    clock.advance(61)
    results = await asyncio.gather(*(provider.execute_task(task(i), CTX) for i in range(3)), return_exceptions=True)
    # The trial (a sleeping CLI that prints no result) fails; the other two calls never touched a meanwhile.
    assert served_by(cli)[1:].count("a") == 1
    assert sum(isinstance(r, Exception) for r in results) == 1
    assert states(provider)["a"] == "out"


async def test_when_every_subscription_is_out_the_provider_itself_is_out_until_the_earliest_reset(
    cli: FakeCli, make: Make, clock: FakeClock
) -> None:
    late, early = epoch_in(clock, 7200), epoch_in(clock, 1800)
    cli.scenario(
        {
            "by_config_dir": {
                "sub-a": {"kind": "usage_limit", "message": f"Claude AI usage limit reached|{late}"},
                "sub-b": {"kind": "usage_limit", "message": f"Claude AI usage limit reached|{early}"},
            }
        }
    )
    provider = make(names="ab")
    signals: list[QuotaSignal] = []
    provider.add_quota_listener(signals.append)
    with pytest.raises(QuotaExhausted) as first:
        await provider.execute_task(task(), CTX)
    assert first.value.subscription == "a"  # a's own error: rotation handles it, routing need not block
    assert [s for s in signals if s.subscription is None] == []
    with pytest.raises(QuotaExhausted):
        await provider.execute_task(task(), CTX)
    # The last one went out: routing hears at once that the provider as a whole is out until b's reset.
    [whole] = [s for s in signals if s.subscription is None]
    assert (whole.status, whole.reset_at) == ("rejected", datetime.fromtimestamp(early, UTC))

    with pytest.raises(QuotaExhausted) as info:
        await provider.execute_task(task(), CTX)
    assert len(cli.calls()) == 2  # nothing was run for the third call
    error = info.value
    assert error.subscription is None  # provider-wide: routing blocks the provider, no subscription is blamed
    assert (error.error_type, error.reset_at) == ("usage_limit", datetime.fromtimestamp(early, UTC))
    assert error.retry_after_s == pytest.approx(1800)
    assert provider.capabilities().exhausted_until == datetime.fromtimestamp(early, UTC)
    health = await provider.health()
    assert health.status is HealthStatus.DEGRADED
    assert datetime.fromtimestamp(early, UTC).isoformat() in health.detail
    # Asking for one subscription by name still blames that one.
    with pytest.raises(QuotaExhausted) as forced:
        await provider.execute_task(task(), ExecutionContext(subscription="a"))
    assert forced.value.subscription == "a"

    clock.advance(1801)  # b is due for its trial call
    assert provider.capabilities().exhausted_until is None
    assert (await provider.health(use_cache=False)).status is HealthStatus.HEALTHY


# --- rate-limit events ----------------------------------------------------------------------------------


async def test_allowed_warning_reports_a_quota_signal_and_steers_rotation_away(
    cli: FakeCli, make: Make, clock: FakeClock
) -> None:
    resets = epoch_in(clock, 7200)
    warning = {"status": "allowed_warning", "utilization": 0.91, "resetsAt": resets, "rateLimitType": "five_hour"}
    cli.scenario({"by_config_dir": {"sub-a": {"rate_limit_events": [warning]}}})
    provider = make()
    signals: list[QuotaSignal] = []
    provider.add_quota_listener(signals.append)

    assert await run(provider, 5) == ["a", "b", "c", "b", "c"]
    [signal] = signals
    assert signal == QuotaSignal(
        provider_id="claude",
        subscription="a",
        limit_kind="five_hour",
        utilization=0.91,
        reset_at=datetime.fromtimestamp(resets, UTC),
        status="allowed_warning",
    )
    [status_a] = [s for s in provider.subscription_status() if s.name == "a"]
    assert status_a.state == "warning"
    assert status_a.quota_utilization == {"five_hour": 0.91}
    clock.advance(7201)  # the warned window reset
    assert "a" in await run(provider, 3)


async def test_a_warned_subscription_still_serves_when_the_others_cannot(
    cli: FakeCli, make: Make, clock: FakeClock
) -> None:
    warning = {"status": "allowed_warning", "utilization": 0.95, "resetsAt": epoch_in(clock, 3600)}
    b_limit = {"kind": "usage_limit", "message": "You've hit your session limit · resets 11pm"}
    cli.scenario({"by_config_dir": {"sub-a": {"rate_limit_events": [warning]}, "sub-b": b_limit}})
    provider = make(names="ab")
    await provider.execute_task(task(), CTX)  # a, now warned
    with pytest.raises(QuotaExhausted):
        await provider.execute_task(task(), CTX)  # b, now out
    assert await run(provider, 2) == ["a", "a"]


async def test_rejected_takes_the_subscription_out_until_resets_at(cli: FakeCli, make: Make, clock: FakeClock) -> None:
    resets = epoch_in(clock, 1800)
    rejected = {"status": "rejected", "utilization": 1.0, "resetsAt": resets, "rateLimitType": "seven_day"}
    cli.scenario({"by_config_dir": {"sub-a": [{"kind": "api_error", "status": 429, "rate_limit_events": [rejected]}]}})
    provider = make(names="ab")
    signals: list[QuotaSignal] = []
    provider.add_quota_listener(signals.append)
    with pytest.raises(Exception, match="429"):
        await provider.execute_task(task(), CTX)
    assert signals[0].status == "rejected"
    clock.advance(120)  # past the short cool-down for a plain 429, not past resetsAt
    assert states(provider)["a"] == "out"
    [status_a] = [s for s in provider.subscription_status() if s.name == "a"]
    assert status_a.reset_at == datetime.fromtimestamp(resets, UTC)
    clock.advance(1700)
    assert states(provider)["a"] == "probe_due"


async def test_rate_limit_events_act_while_the_cli_is_still_running(cli: FakeCli, make: Make, clock: FakeClock) -> None:
    # A long agent run: the CLI reports the rejection early and only prints its result seconds later.
    resets = epoch_in(clock, 3600)
    rejected = {"status": "rejected", "utilization": 1.0, "resetsAt": resets, "rateLimitType": "five_hour"}
    cli.scenario({"by_config_dir": {"sub-a": {"rate_limit_events": [rejected], "hold_s": 3}}})
    provider = make(names="ab")
    signals: list[QuotaSignal] = []
    provider.add_quota_listener(signals.append)
    running = asyncio.create_task(provider.execute_task(task(), CTX))
    for _ in range(100):
        if signals:
            break
        await asyncio.sleep(0.05)
    assert not running.done()
    assert [(s.subscription, s.status) for s in signals] == [("a", "rejected")]
    assert states(provider)["a"] == "out"
    # Meanwhile the next task already goes elsewhere.
    assert (await provider.execute_task(task(1), CTX)).subscription == "b"
    assert (await running).subscription == "a"  # the run itself finished normally
    assert len(signals) == 1  # and its event was not applied a second time


# --- client-side limits ----------------------------------------------------------------------------------


async def test_client_side_request_limits_rotate_and_then_exhaust(cli: FakeCli, make: Make, clock: FakeClock) -> None:
    one_per_minute = {"requests_per_minute": 1}
    provider = make(names="ab", limits={"a": one_per_minute, "b": one_per_minute})
    assert await run(provider, 2) == ["a", "b"]
    with pytest.raises(QuotaExhausted) as info:
        await provider.execute_task(task(), CTX)
    assert (info.value.error_type, info.value.subscription) == ("client_limit", None)
    assert info.value.reset_at == clock.now() + timedelta(seconds=60)
    assert states(provider) == {"a": "over_limit", "b": "over_limit"}
    clock.advance(60)
    assert await run(provider, 1) == ["a"]


async def test_token_limits_count_the_tokens_each_call_used(cli: FakeCli, make: Make) -> None:
    usage = {"input_tokens": 100, "output_tokens": 100, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    cli.scenario({"default": {"usage": usage}})
    provider = make(names="ab", limits={"a": {"tokens_per_hour": 1300}})
    # Each call is estimated at 1025 tokens (prompt + max_output_tokens) and then uses 200: after two calls
    # a holds 400, and 400 + 1025 no longer fits under 1300.
    assert await run(provider, 6) == ["a", "b", "a", "b", "b", "b"]
    [status_a] = [s for s in provider.subscription_status() if s.name == "a"]
    assert status_a.limit_utilization == {"tokens_per_hour": pytest.approx(400 / 1300)}


async def test_subscription_status_counts_usage_without_secrets(cli: FakeCli, clock: FakeClock, tmp_path: Path) -> None:
    cli.scenario({"default": {"cost": 0.25}, "api_key": [{"cost": 0.5}, {"kind": "api_error", "status": 500}]})
    subs = [*config_dirs(tmp_path, "a"), {"name": "b", "api_key_env": "KEY_B"}]
    provider = ClaudeCliProvider(
        "claude", ClaudeCliConfig(subscriptions=subs), secrets=SECRETS.get, clock=clock.monotonic, wall_clock=clock.now
    )
    await provider.execute_task(task(1), CTX)
    await provider.execute_task(task(2), CTX)
    await provider.execute_task(task(3), CTX)
    with pytest.raises(Exception, match="500"):
        await provider.execute_task(task(4), CTX)
    a, b = provider.subscription_status()
    assert (a.kind, a.requests, a.successes, a.failures, a.cost_usd) == ("config_dir", 2, 2, 0, 0.5)
    assert (b.kind, b.api_key_env, b.requests, b.successes, b.failures) == ("api_key_env", "KEY_B", 2, 1, 1)
    assert b.last_outcome == "unavailable"
    assert a.tokens > 0
    dumped = " ".join(s.model_dump_json() for s in provider.subscription_status())
    assert SECRETS["KEY_B"] not in dumped


async def test_a_login_is_charged_nothing_at_the_margin_and_a_key_at_list_price(
    cli: FakeCli, clock: FakeClock, tmp_path: Path
) -> None:
    cli.scenario({"default": {"cost": 0.25}, "api_key": {"cost": 0.5}})
    subs = [*config_dirs(tmp_path, "a"), {"name": "b", "api_key_env": "KEY_B"}]
    provider = ClaudeCliProvider(
        "claude", ClaudeCliConfig(subscriptions=subs), secrets=SECRETS.get, clock=clock.monotonic, wall_clock=clock.now
    )
    on_login = await provider.execute_task(task(1), ExecutionContext(subscription="a"))
    on_key = await provider.execute_task(task(2), ExecutionContext(subscription="b"))
    assert (on_login.subscription, on_login.cost_usd, on_login.list_price_usd) == ("a", 0.0, 0.25)
    assert (on_key.subscription, on_key.cost_usd, on_key.list_price_usd) == ("b", 0.5, None)
    # The pool's own limits count usage at list price, charged or not.
    a, b = provider.subscription_status()
    assert (a.cost_usd, b.cost_usd) == (0.25, 0.5)


def test_estimates_are_free_only_when_every_subscription_is_a_login(clock: FakeClock, tmp_path: Path) -> None:
    def estimate(subs: list[dict[str, Any]]) -> float:
        config = ClaudeCliConfig(subscriptions=subs, model="claude-sonnet-4-5")
        provider = ClaudeCliProvider("claude", config, secrets=SECRETS.get, clock=clock.monotonic)
        long_task = AITask(id="t1", type="code_review", prompt="x" * 4000, max_output_tokens=1000)
        return provider.estimate_cost(long_task).cost_usd

    assert estimate(config_dirs(tmp_path, "a", "b")) == 0.0
    mixed = estimate([*config_dirs(tmp_path, "c"), {"name": "k", "api_key_env": "KEY_B"}])
    assert mixed == pytest.approx((1000 * 3.0 + 1000 * 15.0) / 1e6)
