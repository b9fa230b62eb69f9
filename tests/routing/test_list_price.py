"""A call charged less than its list price (a subscription login's): budgets count the charge, limits the usage."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import pytest

from ledger import UTC_DAY, Ledger, LimitStore, sliding
from providers import (
    AIProvider,
    AITask,
    CostEstimate,
    ExecutionContext,
    HealthStatus,
    ProviderCapabilities,
    ProviderConfig,
    ProviderHealth,
    ProviderResponse,
    TokenUsage,
    utc_now,
)
from routing import ProviderRegistry, Router, RunInfo, SharedLimits, SwitchboardConfig


class OnALogin(AIProvider):
    """Answers as the Claude CLI does on a subscription login: charged nothing, 0.5 at list price."""

    type_name: ClassVar[str] = "on_a_login"

    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities(max_concurrency=1)

    async def _probe(self) -> ProviderHealth:
        return ProviderHealth(status=HealthStatus.HEALTHY, checked_at=utc_now())

    def estimate_cost(self, task: AITask) -> CostEstimate:
        return CostEstimate(cost_usd=0.0, tokens_input=10, tokens_output=5, list_price_usd=0.5)

    async def execute_task(self, task: AITask, context: ExecutionContext) -> ProviderResponse:
        return ProviderResponse(
            text="ok", model="sonnet", usage=TokenUsage(input=10, output=5), cost_usd=0.0, list_price_usd=0.5
        )


async def test_budgets_count_the_charge_and_cost_limits_the_list_price() -> None:
    provider_config = ProviderConfig(type="on_a_login", limits={"cost_usd_per_day": 1.5})
    registry = ProviderRegistry()
    registry.add_instance(OnALogin("login", provider_config))
    config = SwitchboardConfig.model_validate(
        {"budget": {"max_cost_usd_per_run": 0.1}, "providers": {"login": provider_config}}
    )
    router = Router(registry, config, health_checks=False)
    run = RunInfo(run_id="r")
    results = [await router.route(AITask(id=f"t{i}", type="code_review", prompt="p"), run) for i in range(3)]
    # Two calls use 1.0 of the day's 1.5 at list price; a third would pass the 1.35 non-critical work may use, so it
    # is refused for quota, not for the run budget, which nothing was charged against.
    assert [str(r.status) for r in results] == ["completed", "completed", "failed"]
    assert [(a.cost_usd, a.list_price_usd) for r in results for a in r.attempts] == [(0.0, 0.5), (0.0, 0.5)]
    assert results[2].outcome == "quota_exhausted" and "cost_usd_per_day" in (results[2].error or "")
    assert router.budget.run_spent("r") == 0.0


async def test_across_processes_a_cost_limit_counts_the_list_price_and_a_budget_the_charge(tmp_path: Path) -> None:
    ledger = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    provider_config = ProviderConfig(type="on_a_login", limits={"cost_usd_per_day": 1.5})
    config = SwitchboardConfig.model_validate(
        {
            "reserve_for_critical": 0,
            "budget": {"max_cost_usd_per_day": 0.1},
            "providers": {"login": provider_config},
        }
    )
    routers = []
    for i in range(2):  # two processes: each its own router and store object over the one database
        registry = ProviderRegistry()
        registry.add_instance(OnALogin("login", provider_config))
        shared = SharedLimits(LimitStore(ledger.engine, owner=f"p{i}"))
        routers.append((Router(registry, config, health_checks=False, shared=shared), shared))
    results = []
    for i in range(2):
        for router, _ in routers:
            results.append(await router.route(AITask(id=f"t{i}-{id(router)}", type="code_review", prompt="p")))
            await asyncio.sleep(0.6)  # past a lease's time: what it settled is in the store for the other
    # Three calls reach 1.5 of the day's 1.5 at list price, in whichever process; the fourth is refused, and the
    # day budget, charged nothing, never refuses.
    assert [str(r.status) for r in results] == ["completed", "completed", "completed", "failed"]
    assert "cost_usd_per_day" in (results[3].error or "")
    for router, shared in routers:
        await router.registry.aclose()
        shared.close()
    store = LimitStore(ledger.engine, owner="reader")
    assert store.usage("provider:login", sliding(86_400))[2] == 1.5
    assert store.usage("budget:day", UTC_DAY)[2] == 0.0
    ledger.close()


async def test_shared_limits_count_the_list_price_and_shared_budgets_the_charge(sqlite_url: str) -> None:
    provider_config = ProviderConfig(type="on_a_login", limits={"cost_usd_per_day": 10.0})
    registry = ProviderRegistry()
    registry.add_instance(OnALogin("login", provider_config))
    config = SwitchboardConfig.model_validate(
        {"budget": {"max_cost_usd_per_day": 5.0}, "providers": {"login": provider_config}}
    )
    ledger = Ledger(url=sqlite_url)
    store = LimitStore(ledger.engine, owner="p0")
    shared = SharedLimits(store, refresh_s=0.05)
    router = Router(registry, config, shared=shared, health_checks=False)
    for i in range(2):
        result = await router.route(AITask(id=f"t{i}", type="code_review", prompt="p"), RunInfo(run_id="r"))
        assert str(result.status) == "completed"
    shared.close()  # settles what its leases hold
    assert store.usage("provider:login", sliding(86_400))[2] == pytest.approx(1.0)
    assert store.usage("budget:day", UTC_DAY)[2] == 0.0
    ledger.close()
