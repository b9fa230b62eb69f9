"""The guards on money and limits, each shown by the behaviour a one-line break would lose.

Every budget test here uses estimates that alone fit the cap by far: the cap is reached by what calls actually
spent, so a guard that forgot real spend, a midnight, or what the ledger remembers lets the next call through.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger import AttemptRecord, Ledger, NewTask
from providers import AITask, TokenUsage
from routing.budget import BudgetGuard
from routing.config import Budget, SwitchboardConfig, parse_config
from routing.events import QUOTA_BLOCKED, RoutingEvent
from routing.registry import ProviderRegistry
from routing.restore import ledger_observer, restore_router_state
from routing.router import Router, RunInfo
from tests.fakes.claude_harness import FakeCli, config_dirs, install_fake
from tests.routing.engine_kit import engine

# $1 per thousand tokens: a short task's estimate (1 prompt token + 40 output tokens) is $0.041; the mock's answer
# (1 token in, 28 out) costs $0.029, less than the estimate, as a real answer capped at max_output_tokens does.
_PRICES = {"*": {"input": 1000.0, "output": 1000.0}}


def _small_task(task_id: str, **fields: Any) -> AITask:
    return AITask(id=task_id, type="code_review", prompt="p", max_output_tokens=40, **fields)


async def _spend(router: Router, n: int, run_id: str = "r1", prefix: str = "t") -> list[Any]:
    return [await router.route(_small_task(f"{prefix}{i}"), RunInfo(run_id=run_id)) for i in range(n)]


async def test_the_day_budget_is_reached_by_real_spend_though_no_estimate_reaches_it() -> None:
    router = engine({"m": {"prices": _PRICES}}, budget={"max_cost_usd_per_day": 0.2})
    first = await router.route(_small_task("probe"), RunInfo(run_id="r1"))
    assert first.decision.estimate is not None
    # The price is the same per token in and out: the estimate is (prompt + max output tokens) at $1/thousand.
    estimate = (first.decision.estimate.prompt_tokens + first.decision.estimate.max_output_tokens) / 1000
    per_call = first.cost_usd
    assert first.status == "completed" and per_call > 0 and estimate < 0.2 / 4
    results = [first, *await _spend(router, 20)]
    done = [r for r in results if r.status == "completed"]
    spent = sum(r.cost_usd for r in results)
    # Calls stop once spent + the next estimate would pass the cap: six calls ($0.174), a seventh would reach $0.215.
    assert spent <= 0.2 < spent + estimate
    assert len(done) == 6 and spent == pytest.approx(6 * per_call)
    refused = results[len(done)]
    assert refused.outcome == "budget_exceeded" and refused.attempts == []
    assert refused.decision.skipped["m"].startswith("budget: day would reach $")
    await router.registry.aclose()


def test_the_day_budget_starts_again_at_utc_midnight() -> None:
    day = [date(2026, 12, 6)]
    guard = BudgetGuard(Budget(max_cost_usd_per_day=1.0), today=lambda: day[0])
    for _ in range(4):
        guard.reserve("r", 0.1)
        guard.settle("r", 0.1, 0.24)
    assert guard.refusal("r", 0.1) is not None  # 0.96 spent: a 0.1 call would pass 1.0
    day[0] = date(2026, 12, 7)
    assert guard.refusal("r", 0.1) is None
    assert guard.room("r") == 1.0
    # The run's own spend is not the day's: it does not start again at midnight.
    run_guard = BudgetGuard(Budget(max_cost_usd_per_run=1.0), today=lambda: day[0])
    run_guard.reserve("r", 0.1)
    run_guard.settle("r", 0.1, 0.95)
    day[0] = date(2026, 12, 8)
    assert run_guard.refusal("r", 0.1) is not None


def _ledger_run(ledger: Ledger, name: str) -> str:
    run_id, _ = ledger.start_or_resume_run(
        batch_name=name,
        batch_hash=name,
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id="t", task_type="code_review", priority="normal")],
    )
    return run_id


def _spent(run_id: str, cost: float, at: datetime, attempt: int = 1) -> AttemptRecord:
    return AttemptRecord(
        run_id=run_id,
        task_id="t",
        provider_id="m",
        task_type="code_review",
        attempt=attempt,
        outcome="success",
        started_at=at,
        finished_at=at,
        cost_usd=cost,
        usage=TokenUsage(input=10, output=10),
    )


def _priced_config(tmp_path: Path, budget: dict[str, float], limits: dict[str, Any] | None = None) -> SwitchboardConfig:
    provider: dict[str, Any] = {"type": "local_mock", "latency_ms": 0, "prices": _PRICES}
    if limits:
        provider["limits"] = limits
    return parse_config({"budget": budget, "providers": {"m": provider}}, str(tmp_path / "providers.yaml"))


async def _route_after_restart(config: SwitchboardConfig, ledger: Ledger, run_id: str) -> Any:
    router = Router(ProviderRegistry.from_configs(config.providers), config, health_checks=False)
    restore_router_state(router, ledger, run_id)
    try:
        return await router.route(_small_task("next"), RunInfo(run_id=run_id))
    finally:
        await router.registry.aclose()


async def test_a_run_budget_is_restored_from_the_ledger_after_a_restart(tmp_path: Path, sqlite_url: str) -> None:
    ledger = Ledger(url=sqlite_url)
    run_id = _ledger_run(ledger, "resumed")
    ledger.record_attempts([_spent(run_id, 0.47, datetime.now(UTC) - timedelta(minutes=1))])
    config = _priced_config(tmp_path, {"max_cost_usd_per_run": 0.5})
    result = await _route_after_restart(config, ledger, run_id)
    assert result.outcome == "budget_exceeded" and result.attempts == []
    assert result.decision.skipped["m"].startswith("budget: run would reach $0.5110 of $0.5000")
    # Another run is not charged with this one's spend.
    other = await _route_after_restart(config, ledger, _ledger_run(ledger, "other"))
    assert other.status == "completed"


async def test_the_day_spent_is_restored_from_the_ledger_after_a_restart(tmp_path: Path, sqlite_url: str) -> None:
    ledger = Ledger(url=sqlite_url)
    now = datetime.now(UTC)
    earlier = _ledger_run(ledger, "earlier")
    ledger.record_attempts([_spent(earlier, 0.47, now - timedelta(seconds=5))])
    config = _priced_config(tmp_path, {"max_cost_usd_per_day": 0.5})
    result = await _route_after_restart(config, ledger, _ledger_run(ledger, "later"))
    assert result.outcome == "budget_exceeded"
    assert result.decision.skipped["m"].startswith("budget: day would reach $0.5110 of $0.5000")


async def test_the_windows_of_limits_are_restored_from_the_ledger_after_a_restart(
    tmp_path: Path, sqlite_url: str
) -> None:
    ledger = Ledger(url=sqlite_url)
    earlier = _ledger_run(ledger, "earlier")
    at = datetime.now(UTC) - timedelta(minutes=5)
    ledger.record_attempts([_spent(earlier, 0.01, at, attempt=i) for i in range(1, 4)])
    config = _priced_config(tmp_path, {}, {"requests_per_hour": 3})
    result = await _route_after_restart(config, ledger, _ledger_run(ledger, "later"))
    assert result.status == "failed" and result.attempts == []
    assert "requests_per_hour 3/3" in result.decision.skipped["m"]


async def test_a_calls_tokens_count_against_a_token_limit() -> None:
    # Each call's estimate (41 tokens) fits the limit alone; the real tokens (29 a call) add up to it: after
    # three calls (87 tokens) a fourth's estimate would reach 128.
    router = engine(
        {"m": {"priority": 1, "limits": {"tokens_per_hour": 100}}, "other": {"priority": 2}}, reserve_for_critical=0
    )
    results = await _spend(router, 12)
    used = [r.attempts[0].usage.total for r in results if r.provider_id == "m"]
    assert used == [29, 29, 29]
    moved = [r for r in results if r.provider_id == "other"]
    assert moved, "the token limit never refused a call"
    assert "tokens_per_hour" in moved[0].decision.skipped["m"]
    await router.registry.aclose()


async def test_a_calls_cost_counts_against_a_cost_limit() -> None:
    router = engine(
        {"m": {"priority": 1, "prices": _PRICES, "limits": {"cost_usd_per_day": 0.2}}, "other": {"priority": 2}},
        reserve_for_critical=0,
    )
    results = await _spend(router, 20)
    spent_on_m = sum(a.cost_usd for r in results for a in r.attempts if a.provider_id == "m")
    assert spent_on_m == pytest.approx(
        6 * 0.029
    )  # as the day budget above: six calls, and a seventh's estimate passes $0.2
    moved = [r for r in results if r.provider_id == "other"]
    assert moved and "cost_usd_per_day" in moved[0].decision.skipped["m"]
    await router.registry.aclose()


@pytest.mark.parametrize(
    ("limits", "on_a"),
    [
        # Each call uses 40 tokens, its estimate 41: two calls (80) fit a's 100, a third's estimate would reach 121.
        ({"tokens_per_hour": 100}, 2),
        # Each call costs $0.04 (its estimate a fraction of a cent): three fit $0.10, the fourth would not.
        ({"cost_usd_per_day": 0.1}, 3),
    ],
)
async def test_a_subscriptions_tokens_and_cost_count_against_its_own_limits(
    tmp_path: Path, monkeypatch: Any, limits: dict[str, float], on_a: int
) -> None:
    cli: FakeCli = install_fake(tmp_path / "fake-claude", monkeypatch)
    subscriptions = config_dirs(tmp_path, "a", "b")
    subscriptions[0]["limits"] = limits
    config = parse_config(
        {
            "reserve_for_critical": 0,
            "providers": {"claude": {"type": "claude_cli", "priority": 1, "subscriptions": subscriptions}},
        },
        str(tmp_path / "providers.yaml"),
    )
    usage = {"input_tokens": 30, "output_tokens": 10, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    cli.scenario({"default": {"usage": usage, "cost": 0.04}})
    router = Router(ProviderRegistry.from_configs(config.providers), config, health_checks=False)
    try:
        served = []
        for i in range(6):
            result = await router.route(_small_task(f"s{i}", affinity="k"), RunInfo(run_id="r"))
            assert result.status == "completed", result.error
            served.append(result.attempts[-1].subscription)
    finally:
        await router.registry.aclose()
    assert served[:on_a] == ["a"] * on_a and set(served[on_a:]) == {"b"}
    # Routing counted them itself (not only the CLI provider's own rotation): it names b for the next call.
    quota = router.state("claude").quota
    assert quota.admission(41, 0.001, critical=False, affinity=None) == (None, "b")


async def test_a_long_retry_after_blocks_the_provider_and_the_block_outlives_a_restart(
    tmp_path: Path, sqlite_url: str
) -> None:
    ledger = Ledger(url=sqlite_url)
    provider = {"type": "local_mock", "latency_ms": 0, "failure_rate": 1.0, "fail_with": "rate_limited"}
    config = parse_config(
        {
            "failover": {"retry_max_s": 5},
            "providers": {
                "limited": {**provider, "priority": 1, "retry_after_s": 600},
                "backup": {"type": "local_mock", "latency_ms": 0, "priority": 2},
            },
        },
        str(tmp_path / "providers.yaml"),
    )
    events: list[RoutingEvent] = []
    observe = ledger_observer(ledger)

    def both(event: RoutingEvent) -> None:
        events.append(event)
        observe(event)

    run_id = _ledger_run(ledger, "first")
    router = Router(ProviderRegistry.from_configs(config.providers), config, observer=both, health_checks=False)
    first = await router.route(_small_task("a"), RunInfo(run_id=run_id))
    await router.registry.aclose()
    assert [a.provider_id for a in first.attempts] == ["limited", "backup"]
    blocked = [e for e in events if e.kind == QUOTA_BLOCKED]
    assert len(blocked) == 1 and blocked[0].provider_id == "limited"
    reset_at = datetime.fromisoformat(str(blocked[0].detail["reset_at"]))
    assert timedelta(seconds=590) < reset_at - datetime.now(UTC) <= timedelta(seconds=600)
    # A new process (a new router over the same ledger) keeps the provider out: it never calls it.
    later = _ledger_run(ledger, "second")
    router = Router(ProviderRegistry.from_configs(config.providers), config, health_checks=False)
    restore_router_state(router, ledger, later)
    second = await router.route(_small_task("b"), RunInfo(run_id=later))
    await router.registry.aclose()
    assert [a.provider_id for a in second.attempts] == ["backup"]
    assert second.decision.skipped["limited"].startswith("quota: rate_limited (resets in")


async def test_a_short_retry_after_only_cools_off_and_is_not_a_block() -> None:
    events: list[RoutingEvent] = []
    router = engine(
        {"limited": {"failure_rate": 1.0, "fail_with": "rate_limited", "retry_after_s": 2}, "backup": {"priority": 2}},
        events=events,
    )
    await router.route(_small_task("a"), RunInfo())
    assert not [e for e in events if e.kind == QUOTA_BLOCKED]
    await router.registry.aclose()


async def test_tasks_sharing_an_affinity_key_stay_on_the_subscription_that_served_them(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Routing names the subscription (some are out as far as it knows): the pinned one wins over the least used."""
    cli: FakeCli = install_fake(tmp_path / "fake-claude", monkeypatch)
    subscriptions = config_dirs(tmp_path, "a", "b", "c")
    for sub in subscriptions[1:]:
        sub["limits"] = {"requests_per_hour": 100}
    config = parse_config(
        {"providers": {"claude": {"type": "claude_cli", "priority": 1, "subscriptions": subscriptions}}},
        str(tmp_path / "providers.yaml"),
    )
    cli.scenario({"default": {}})
    router = Router(ProviderRegistry.from_configs(config.providers), config, health_checks=False)
    router.restore_quota_block("claude", datetime.now(UTC) + timedelta(hours=1), "usage_limit", "a")
    try:
        pinned = await router.route(_small_task("first", affinity="repo-1"), RunInfo(run_id="r"))
        sub = pinned.attempts[-1].subscription
        assert sub in {"b", "c"}
        # The pinned subscription now has the higher usage; a task without the key goes to the other one ...
        free = await router.route(_small_task("free"), RunInfo(run_id="r"))
        assert free.attempts[-1].subscription == ({"b", "c"} - {sub}).pop()
        # ... and the key's next tasks stay where the key was served, though the other is now as used.
        again = [await router.route(_small_task(f"k{i}", affinity="repo-1"), RunInfo(run_id="r")) for i in range(3)]
        assert [r.attempts[-1].subscription for r in again] == [sub] * 3
    finally:
        await router.registry.aclose()
