"""A subscription's own trouble moves the same task to the provider's next subscription, before any failover.

The router runs a real `claude_cli` provider over the fake CLI (tests/fakes), two subscriptions "a" and "b",
and a local mock as the second provider.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from providers import AITask, ClaudeCliConfig, ClaudeCliProvider, LocalMockConfig, LocalMockProvider, RateLimited
from routing.config import SwitchboardConfig
from routing.events import FAILOVER, RoutingEvent
from routing.failover import FailoverSettings
from routing.registry import ProviderRegistry
from routing.router import Router
from tests.fakes.claude_harness import SECRETS, FakeCli, config_dirs, install_fake

RESET = int(time.time()) + 3 * 3600
USAGE_LIMIT = {"kind": "usage_limit", "message": "You've hit your session limit · resets 4:10pm (UTC)"}
TROUBLE: dict[str, dict[str, Any]] = {
    "usage_limit": USAGE_LIMIT,
    "legacy_usage_limit": {"kind": "usage_limit", "message": f"Claude AI usage limit reached|{RESET}"},
    "rejected_event": {
        **USAGE_LIMIT,
        "rate_limit_events": [{"status": "rejected", "resetsAt": RESET, "rateLimitType": "five_hour"}],
    },
    "refused_401": {"kind": "api_retry", "status": 401},
    "rate_limited_30s": {"kind": "api_retry", "status": 429, "retry_after_s": 30},
}
OUTCOME = {
    "usage_limit": "quota_exhausted",
    "legacy_usage_limit": "quota_exhausted",
    "rejected_event": "quota_exhausted",
    "refused_401": "authentication",
    "rate_limited_30s": "rate_limited",
}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCli:
    return install_fake(tmp_path / "fake", monkeypatch)


def router(
    tmp_path: Path, *, names: str = "ab", mock_priority: int | None = 2, events: list[RoutingEvent] | None = None,
    **settings: Any,
) -> Router:  # fmt: skip
    registry = ProviderRegistry()
    config = ClaudeCliConfig(priority=1, subscriptions=config_dirs(tmp_path, *names), timeout_s=60)
    registry.add_instance(ClaudeCliProvider("claude", config, secrets=SECRETS.get))
    if mock_priority is not None:
        registry.add_instance(LocalMockProvider("mock", LocalMockConfig(priority=mock_priority, latency_ms=0)))
    doc = {"strategy": "priority_based", "providers": {"_": {"type": "local_mock"}}, **settings}
    observer = events.append if events is not None else None
    return Router(registry, SwitchboardConfig.model_validate(doc), observer=observer, health_checks=False)


def task(i: int, max_attempts: int = 3) -> AITask:
    return AITask(id=f"t{i}", type="code_review", prompt=f"task {i}", max_attempts=max_attempts)


def rows(result: Any) -> list[tuple[str, str | None, str, int]]:
    return [(a.provider_id, a.subscription, a.outcome, a.attempt) for a in result.attempts]


@pytest.mark.parametrize("trouble", sorted(TROUBLE))
async def test_the_same_task_completes_on_the_next_subscription_and_later_tasks_skip_the_troubled_one(
    cli: FakeCli, tmp_path: Path, trouble: str
) -> None:
    cli.scenario({"by_config_dir": {"sub-a": TROUBLE[trouble], "sub-b": {"result": "served by b"}}})
    events: list[RoutingEvent] = []
    # A circuit that opens at the first health failure: a subscription's own trouble must not count as one.
    engine = router(tmp_path, events=events, circuit={"failure_threshold": 1})
    # max_attempts 1: the move to "b" does not spend the task's attempts.
    first = await engine.route(task(0, max_attempts=1))
    assert first.status == "completed" and first.provider_id == "claude"
    assert rows(first) == [("claude", "a", OUTCOME[trouble], 1), ("claude", "b", "success", 2)]
    assert first.decision.chosen == "claude"
    assert [e for e in events if e.kind == FAILOVER] == []  # a rotation is not a failover
    for i in (1, 2):
        later = await engine.route(task(i))
        assert rows(later) == [("claude", "b", "success", 1)]
    assert [c["key"] for c in cli.calls()].count("config_dir:sub-a") == 1
    assert cli.requests().get("config_dir:sub-a", 0) <= 1  # an api_retry run was stopped at its first retry


async def test_when_no_subscription_can_take_it_the_task_fails_over_and_the_last_call_counts(
    cli: FakeCli, tmp_path: Path
) -> None:
    cli.scenario({"default": USAGE_LIMIT})
    engine = router(tmp_path)
    result = await engine.route(task(0, max_attempts=2))
    assert rows(result) == [
        ("claude", "a", "quota_exhausted", 1),
        ("claude", "b", "quota_exhausted", 2),
        ("mock", None, "success", 3),
    ]
    # The next task does not try claude at all: routing knows every subscription is out.
    later = await engine.route(task(1))
    assert rows(later) == [("mock", None, "success", 1)]
    assert later.decision.skipped["claude"].startswith("quota: subscriptions exhausted")
    # With max_attempts 1 the rotation is free but the move to the mock is not: the task fails on "b".
    cli.scenario({"default": USAGE_LIMIT})
    again = await router(tmp_path / "again").route(task(1, max_attempts=1))
    assert again.status == "failed"
    assert [(a.provider_id, a.subscription) for a in again.attempts] == [("claude", "a"), ("claude", "b")]


async def test_with_one_subscription_its_trouble_fails_over_at_once(cli: FakeCli, tmp_path: Path) -> None:
    cli.scenario({"default": {"kind": "api_retry", "status": 401}})
    result = await router(tmp_path, names="a").route(task(0))
    assert rows(result) == [("claude", "a", "authentication", 1), ("mock", None, "success", 2)]


async def test_a_second_provider_waits_while_the_preferred_provider_has_a_free_subscription(
    cli: FakeCli, tmp_path: Path
) -> None:
    # The mock is configured (priority 2) and idle: the strategy prefers claude, whose "b" is free.
    cli.scenario({"by_config_dir": {"sub-a": USAGE_LIMIT, "sub-b": {"result": "b"}}})
    engine = router(tmp_path)
    results = [await engine.route(task(i)) for i in range(3)]
    assert [r.provider_id for r in results] == ["claude"] * 3
    assert all(a.provider_id == "claude" for r in results for a in r.attempts)


async def test_overload_is_not_a_subscription_matter_it_retries_then_fails_over(cli: FakeCli, tmp_path: Path) -> None:
    cli.scenario({"default": {"kind": "api_retry", "status": 529, "delay_scale": 0.001}})
    result = await router(tmp_path, names="ab").route(task(0))
    # One retry on claude (the policy's max_same_provider_retries), then the mock.
    assert [(a.provider_id, a.outcome) for a in result.attempts] == [
        ("claude", "overloaded"),
        ("claude", "overloaded"),
        ("mock", "success"),
    ]


class _Sleeps:
    """A sleep that moves the engine's clock instead of waiting."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.now = 1000.0

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(("retry_max_s", "expected"), [(5.0, ["a", "b"]), (60.0, ["a", "a"])])
async def test_raising_retry_max_s_makes_a_30s_rate_limit_worth_waiting_for(
    retry_max_s: float, expected: list[str]
) -> None:
    registry = ProviderRegistry()
    limited = LocalMockConfig(priority=1, latency_ms=0, failure_rate=1.0, fail_with="rate_limited", retry_after_s=30)
    registry.add_instance(LocalMockProvider("a", limited))
    registry.add_instance(LocalMockProvider("b", LocalMockConfig(priority=2, latency_ms=0)))
    sleeps = _Sleeps()
    doc = {"strategy": "priority_based", "providers": {"_": {"type": "local_mock"}}}
    config = SwitchboardConfig.model_validate({**doc, "failover": FailoverSettings(retry_max_s=retry_max_s)})
    engine = Router(registry, config, sleep=sleeps, clock=lambda: sleeps.now, health_checks=False)
    result = await engine.route(task(0, max_attempts=2))
    assert [a.provider_id for a in result.attempts] == expected
    assert [round(s) for s in sleeps.slept] == ([30] if retry_max_s == 60.0 else [])


async def test_a_rotation_that_finds_no_subscription_left_counts_the_failed_call(cli: FakeCli, tmp_path: Path) -> None:
    cli.scenario({"by_config_dir": {"sub-a": USAGE_LIMIT, "sub-b": {"result": "b"}}})
    engine = router(tmp_path)
    # "b" is blocked as far as routing knows (its long rate limit seen by another process, say): the task is
    # sent to "a", whose trouble finds no subscription to move to. That call was spent: with max_attempts 1
    # the task may not go on to the mock.
    engine.state("claude").quota.on_error(RateLimited("slow down", subscription="b", retry_after_s=600))
    result = await engine.route(task(0, max_attempts=1))
    assert result.status == "failed"
    assert rows(result) == [("claude", "a", "quota_exhausted", 1)]
    assert "every subscription is out" in result.decision.skipped["claude"]


@pytest.mark.parametrize(("retry_max_s", "slept"), [(5.0, []), (60.0, [30])])
async def test_whether_a_subscriptions_rate_limit_is_long_follows_retry_max_s(
    cli: FakeCli, tmp_path: Path, retry_max_s: float, slept: list[int]
) -> None:
    # The CLI is stopped at once either way (no retry budget); a 30 s wait is the subscription's own long
    # trouble under the default threshold (rotate at once, no sleep), a short one worth waiting for under 60 s.
    cli.scenario({"by_config_dir": {"sub-a": {"kind": "api_retry", "status": 429, "retry_after_s": 30}}})
    sleeps = _Sleeps()
    registry = ProviderRegistry()
    config = ClaudeCliConfig(subscriptions=config_dirs(tmp_path, "a", "b"), timeout_s=60, overload_retry_budget_s=0)
    registry.add_instance(ClaudeCliProvider("claude", config, secrets=SECRETS.get))
    doc = {"providers": {"_": {"type": "local_mock"}}, "failover": {"retry_max_s": retry_max_s}}
    engine = Router(
        registry, SwitchboardConfig.model_validate(doc), sleep=sleeps, clock=lambda: sleeps.now, health_checks=False
    )
    result = await engine.route(task(0))
    assert rows(result) == [("claude", "a", "rate_limited", 1), ("claude", "b", "success", 2)]
    assert [round(s) for s in sleeps.slept] == slept
