"""After a restart the router rebuilds its quota state from the ledger, subscriptions included.

Each "run" is a fresh router over fresh providers (what a new `switchboard run` process builds), sharing
only the ledger; the Claude Code CLI is the fake one from tests/fakes, which speaks the real wire format.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger import AttemptRecord, Ledger, NewTask
from providers import AITask, Priority
from routing.config import SwitchboardConfig, parse_config
from routing.events import QUOTA_BLOCKED, RoutingEvent
from routing.registry import ProviderRegistry
from routing.restore import ledger_observer, record_event, restore_router_state
from routing.router import Router, RunInfo
from tests.fakes.claude_harness import FakeCli, config_dirs, install_fake


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCli:
    return install_fake(tmp_path / "fake-claude", monkeypatch)


def _config(tmp_path: Path, subscriptions: list[dict[str, Any]]) -> SwitchboardConfig:
    return parse_config(
        {
            "providers": {
                "claude": {"type": "claude_cli", "priority": 1, "subscriptions": subscriptions},
                "mock": {"type": "local_mock", "priority": 2, "latency_ms": 0},
            }
        },
        str(tmp_path / "providers.yaml"),
    )


def _run(ledger: Ledger, name: str) -> str:
    run_id, _ = ledger.start_or_resume_run(
        batch_name=name,
        batch_hash=name,
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id="t", task_type="code_review", priority="critical")],
    )
    return run_id


def _attempt(
    run_id: str,
    provider_id: str,
    at: datetime,
    *,
    task_id: str = "t",
    attempt: int = 1,
    outcome: str = "success",
    subscription: str | None = None,
    cost_usd: float = 0.0,
) -> AttemptRecord:
    """A recorded call, as an earlier run left it in the ledger."""
    return AttemptRecord(
        run_id=run_id,
        task_id=task_id,
        provider_id=provider_id,
        subscription=subscription,
        task_type="code_review",
        attempt=attempt,
        outcome=outcome,
        started_at=at,
        finished_at=at,
        cost_usd=cost_usd,
    )


async def _route_in_a_new_process(config: SwitchboardConfig, ledger: Ledger, name: str) -> Any:
    """What one `switchboard run` does for one task: build everything, restore from the ledger, route."""
    run_id = _run(ledger, name)
    router = Router(
        ProviderRegistry.from_configs(config.providers),
        config,
        recorder=lambda attempt: ledger.record_attempts([attempt]),
        observer=ledger_observer(ledger),
        health_checks=False,
    )
    restore_router_state(router, ledger, run_id)
    try:
        task = AITask(id="t", type="code_review", prompt=f"review for {name}", priority=Priority.CRITICAL)
        return await router.route(task, RunInfo(run_id=run_id))
    finally:
        await router.registry.aclose()


async def test_a_subscription_limit_holds_across_runs(tmp_path: Path, sqlite_url: str, cli: FakeCli) -> None:
    subscriptions = config_dirs(tmp_path, "a")
    subscriptions[0]["limits"] = {"requests_per_hour": 1}
    config = _config(tmp_path, subscriptions)
    ledger = Ledger(url=sqlite_url)
    first = await _route_in_a_new_process(config, ledger, "first")
    assert (first.provider_id, first.attempts[0].subscription) == ("claude", "a")
    second = await _route_in_a_new_process(config, ledger, "second")
    assert second.provider_id == "mock" and second.decision.skipped["claude"].startswith("quota: ")
    assert len(cli.calls()) == 1


async def test_a_subscription_window_is_rebuilt_from_the_attempts_alone(
    tmp_path: Path, sqlite_url: str, cli: FakeCli
) -> None:
    subscriptions = config_dirs(tmp_path, "a")
    subscriptions[0]["limits"] = {"requests_per_hour": 1}
    config = _config(tmp_path, subscriptions)
    ledger = Ledger(url=sqlite_url)
    run_id = _run(ledger, "earlier")
    at = datetime.now(UTC) - timedelta(minutes=20)
    ledger.record_attempts([_attempt(run_id, "claude", at, subscription="a")])
    result = await _route_in_a_new_process(config, ledger, "later")
    assert result.provider_id == "mock" and cli.calls() == []
    assert result.decision.skipped["claude"].startswith("quota: every subscription is out (a: requests_per_hour 1/1")


async def test_a_subscription_out_until_its_reset_stays_out_after_a_restart(
    tmp_path: Path, sqlite_url: str, cli: FakeCli
) -> None:
    reset = int(time.time()) + 3 * 3600
    cli.scenario(
        {
            "by_config_dir": {
                "sub-a": {"kind": "usage_limit", "message": f"Claude AI usage limit reached|{reset}"},
                "sub-b": {"result": "LGTM"},
            }
        }
    )
    config = _config(tmp_path, config_dirs(tmp_path, "a", "b"))
    ledger = Ledger(url=sqlite_url)
    first = await _route_in_a_new_process(config, ledger, "first")
    # The task that met the limit moved to "b" at once and completed there.
    assert [(a.provider_id, a.subscription, a.outcome) for a in first.attempts] == [
        ("claude", "a", "quota_exhausted"),
        ("claude", "b", "success"),
    ]
    # A new process: the CLI pool starts with both subscriptions in rotation, "a" first. Routing knows better.
    second = await _route_in_a_new_process(config, ledger, "second")
    assert [(a.provider_id, a.subscription, a.outcome) for a in second.attempts] == [("claude", "b", "success")]
    assert [c["key"] for c in cli.calls()] == ["config_dir:sub-a", "config_dir:sub-b", "config_dir:sub-b"]


async def test_every_subscription_out_keeps_the_provider_out_after_a_restart(
    tmp_path: Path, sqlite_url: str, cli: FakeCli
) -> None:
    config = _config(tmp_path, config_dirs(tmp_path, "a", "b"))
    ledger = Ledger(url=sqlite_url)
    reset = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    for sub in ("a", "b"):
        ledger.record_provider_event("claude", "quota.blocked", {"reason": "usage_limit", "reset_at": reset}, sub)
    result = await _route_in_a_new_process(config, ledger, "after")
    assert result.provider_id == "mock" and cli.calls() == []
    assert "every subscription is out" in result.decision.skipped["claude"]


async def test_a_day_of_attempts_is_restored_into_every_window(tmp_path: Path, sqlite_url: str, cli: FakeCli) -> None:
    subscriptions = config_dirs(tmp_path, "a")
    subscriptions[0]["limits"] = {"requests_per_day": 5000}
    config = _config(tmp_path, subscriptions)
    ledger = Ledger(url=sqlite_url)
    run_id = _run(ledger, "history")
    now = datetime.now(UTC)
    # Recorded out of time order, as concurrent tasks commit them.
    ages_s = [(i * 7919) % 86000 for i in range(4000)]
    ledger.record_attempts(
        _attempt(run_id, "claude", now - timedelta(seconds=age), attempt=i + 1, subscription="a")
        for i, age in enumerate(ages_s)
    )
    router = Router(ProviderRegistry.from_configs(config.providers), config, health_checks=False)
    restore_router_state(router, ledger, run_id)
    skipped = (await router.route(AITask(id="x", type="code_review", prompt="p"))).decision.skipped
    # 4000 of 5000 used: over the non-critical share? no (4000 + 1 <= 4500); over the switch threshold? no.
    assert "claude" not in skipped
    assert router.state("claude").quota.pressure() == pytest.approx(4001 / 5000)
    await router.registry.aclose()


def _past_calls(ledger: Ledger, run_id: str, provider_id: str, outcomes: list[str], ago_s: float) -> None:
    now = datetime.now(UTC)
    ledger.record_attempts(
        _attempt(run_id, provider_id, now - timedelta(seconds=ago_s + i), task_id=f"{provider_id}-{i}", outcome=outcome)
        for i, outcome in enumerate(outcomes)
    )


async def test_circuits_start_from_what_earlier_runs_saw(tmp_path: Path, sqlite_url: str) -> None:
    config = parse_config(
        {
            "strategy": "priority_based",
            "circuit": {"failure_threshold": 3, "cooldown_s": 60, "probe_in_flight": 2},
            "providers": {
                "down": {"type": "local_mock", "priority": 1, "latency_ms": 50, "max_concurrency": 50},
                "up": {"type": "local_mock", "priority": 2, "latency_ms": 50, "max_concurrency": 50},
                "new": {"type": "local_mock", "priority": 3, "latency_ms": 50, "max_concurrency": 50},
            },
        },
        str(tmp_path / "providers.yaml"),
    )
    ledger = Ledger(url=sqlite_url)
    earlier = _run(ledger, "earlier")
    _past_calls(ledger, earlier, "down", ["unavailable", "timeout", "unavailable"], ago_s=5)
    _past_calls(ledger, earlier, "up", ["success", "rate_limited", "unavailable"], ago_s=5)  # newest first
    router = Router(ProviderRegistry.from_configs(config.providers), config, health_checks=False)
    restore_router_state(router, ledger, _run(ledger, "now"))

    results = await router.route_many([AITask(id=f"t{i}", type="code_review", prompt="p") for i in range(20)])
    assert all(r.status == "completed" for r in results)
    # "down" failed three times a moment ago: its circuit is open, nothing is sent to it.
    assert all(r.decision.skipped.get("down") == "circuit_open" for r in results)
    # "up" answered last time: the whole burst goes at once instead of two probes first.
    starts = sorted(a.started_at for r in results for a in r.attempts)
    first_answer = min(a.finished_at for r in results for a in r.attempts)
    assert {r.provider_id for r in results} == {"up"}
    assert all(start < first_answer for start in starts)
    await router.registry.aclose()


async def test_a_day_budget_reported_by_an_earlier_run_is_not_reported_again(tmp_path: Path, sqlite_url: str) -> None:
    from routing.events import BUDGET_EXHAUSTED

    config = parse_config(
        {
            "budget": {"max_cost_usd_per_day": 0.01},
            "providers": {"m": {"type": "local_mock", "latency_ms": 0, "prices": {"*": {"input": 10, "output": 10}}}},
        },
        str(tmp_path / "providers.yaml"),
    )
    ledger = Ledger(url=sqlite_url)
    earlier = _run(ledger, "earlier")
    now = datetime.now(UTC)
    ledger.record_attempts([_attempt(earlier, "m", now, cost_usd=0.009)])
    today = now.date().isoformat()
    day_report = {"scope": "day", "day": today, "spent_usd": 0.009, "limit_usd": 0.01, "run_id": earlier}
    ledger.record_provider_event("*", BUDGET_EXHAUSTED, day_report)

    def route_in_a_new_process() -> list[RoutingEvent]:
        events: list[RoutingEvent] = []
        router = Router(ProviderRegistry.from_configs(config.providers), config, observer=events.append)
        restore_router_state(router, ledger, _run(ledger, f"later-{len(seen)}"))
        seen.append(router)
        return events

    seen: list[Router] = []
    events = route_in_a_new_process()
    result = await seen[-1].route(AITask(id="x", type="code_review", prompt="p"), RunInfo(run_id="later"))
    assert result.outcome == "budget_exceeded"
    assert not [e for e in events if e.kind == BUDGET_EXHAUSTED]
    await seen[-1].registry.aclose()


async def test_a_quota_block_reset_since_is_not_restored(sqlite_url: str) -> None:
    from routing.events import QUOTA_BLOCKED, QUOTA_RESET

    ledger = Ledger(url=sqlite_url)
    reset_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    ledger.record_provider_event("mock", QUOTA_BLOCKED, {"reason": "quota_exhausted", "reset_at": reset_at})
    ledger.record_provider_event("mock", QUOTA_RESET, {"previous": "quota_exhausted"})
    config = parse_config({"providers": {"mock": {"type": "local_mock", "latency_ms": 0}}}, "providers.yaml")
    router = Router(ProviderRegistry.from_configs(config.providers), config, health_checks=False)
    restore_router_state(router, ledger, _run(ledger, "after-reset"))
    result = await router.route(AITask(id="x", type="code_review", prompt="p"))
    assert result.provider_id == "mock" and result.decision.skipped == {}
    await router.registry.aclose()


def test_an_event_is_recorded_at_the_time_it_happened_not_when_its_recorder_got_to_it(sqlite_url: str) -> None:
    # The flow's forwarder records events from a thread, after emitting them to Prefect: seconds late at worst.
    ledger = Ledger(url=sqlite_url)
    happened = datetime.now(UTC) - timedelta(seconds=5)
    record_event(ledger, RoutingEvent(QUOTA_BLOCKED, "p", detail={"reason": "quota"}, at=happened))
    (stored,) = ledger.events_since(happened - timedelta(seconds=1), [QUOTA_BLOCKED])
    assert stored.at == happened
    ledger.close()
