"""Model tiers: a provider lists several models with their prices and the task types (or prompt sizes) each
suits; routing sends each task to the cheapest model good enough for it, and a task's `model` picks among them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from providers import AITask
from routing import ConfigError, ProviderRegistry, Router, RunInfo, parse_config
from tests.fakes.fake_llm_servers import FakeAnthropic

KEY = "sk-ant-api03-TIERS-0123456789abcdef"
PRICES = {
    "claude-haiku-4-5": {"input": 1.0, "output": 5.0},
    "claude-sonnet-4-5": {"input": 3.0, "output": 15.0},
    "claude-opus-4-1": {"input": 15.0, "output": 75.0},
}
TIERS = [
    {"name": "claude-opus-4-1", "task_types": ["bug_fix"]},
    {"name": "claude-sonnet-4-5"},
    {"name": "claude-haiku-4-5", "task_types": ["classification", "summarization"], "max_prompt_tokens": 2000},
]


@pytest.fixture
def server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=KEY) as fake:
        yield fake


def _router(server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra: Any) -> Router:
    monkeypatch.setenv("TIERS_TEST_KEY", KEY)
    doc = {
        "providers": {
            "claude": {
                "type": "anthropic",
                "base_url": server.url,
                "api_key_env": "TIERS_TEST_KEY",
                "model": "claude-sonnet-4-5",
                "models": TIERS,
                "prices": PRICES,
                **extra,
            }
        }
    }
    config = parse_config(doc, str(tmp_path / "providers.yaml"))
    return Router(ProviderRegistry.from_configs(config.providers), config, health_checks=False)


async def _models_asked(router: Router, server: FakeAnthropic, *tasks: AITask) -> list[str]:
    for task in tasks:
        result = await router.route(task, RunInfo(run_id="r"))
        assert result.status == "completed", result.error
    await router.registry.aclose()
    return [request.body["model"] for request in server.requests]


async def test_each_task_goes_to_the_cheapest_model_that_suits_its_type_and_prompt(
    server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    router = _router(server, monkeypatch, tmp_path)
    asked = await _models_asked(
        router,
        server,
        AITask(id="sum", type="summarization", prompt="sum up the thread"),
        AITask(id="review", type="code_review", prompt="review the diff"),
        AITask(id="long", type="summarization", prompt="x" * 40_000),  # ~10,000 tokens: past haiku's 2,000
        AITask(id="fix", type="bug_fix", prompt="fix the crash"),  # only opus lists bug fixes, sonnet takes any
    )
    assert asked == ["claude-haiku-4-5", "claude-sonnet-4-5", "claude-sonnet-4-5", "claude-sonnet-4-5"]


async def test_a_tasks_model_preference_picks_among_the_tiers(
    server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    router = _router(server, monkeypatch, tmp_path)
    task = AITask(id="fix", type="bug_fix", prompt="fix the crash", metadata={"model": "claude-opus-4-1"})
    assert await _models_asked(router, server, task) == ["claude-opus-4-1"]


async def test_a_call_is_estimated_and_charged_at_its_tiers_price(
    server: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    router = _router(server, monkeypatch, tmp_path)
    task = AITask(id="sum", type="summarization", prompt="sum up the thread", max_output_tokens=100)
    provider = router.state("claude").provider
    estimate = provider.estimate_cost(task)
    assert estimate.cost_usd == pytest.approx((estimate.tokens_input * 1.0 + 100 * 5.0) / 1e6)  # haiku's price
    result = await router.route(task, RunInfo(run_id="r"))
    [attempt] = result.attempts
    assert server.requests[0].body["model"] == "claude-haiku-4-5"
    assert attempt.model == "claude-haiku-4-5-20251001"  # the snapshot that answered, priced as haiku
    usage = attempt.usage
    assert attempt.cost_usd == pytest.approx((usage.input * 1.0 + usage.output * 5.0) / 1e6)
    await router.registry.aclose()


def test_a_model_listed_twice_is_refused_naming_the_field(tmp_path: Path) -> None:
    doc = {"providers": {"m": {"type": "local_mock", "models": [{"name": "a"}, {"name": "a"}]}}}
    with pytest.raises(ConfigError) as raised:
        parse_config(doc, str(tmp_path / "providers.yaml"))
    assert "providers.m.models" in str(raised.value) and "'a' is listed twice" in str(raised.value)


async def test_cost_based_routing_prices_a_provider_by_the_tier_the_task_would_get(tmp_path: Path) -> None:
    doc = {
        "strategy": "cost_based",
        "providers": {
            "tiered": {"type": "local_mock", "latency_ms": 0, "model": "claude-sonnet-4-5", "models": TIERS},
            "middle": {"type": "local_mock", "latency_ms": 0, "prices": {"*": {"input": 2.0, "output": 10.0}}},
        },
    }
    doc["providers"]["tiered"]["prices"] = PRICES
    config = parse_config(doc, str(tmp_path / "providers.yaml"))
    router = Router(ProviderRegistry.from_configs(config.providers), config, health_checks=False)
    run = RunInfo(run_id="r", strategy="cost_based")
    summary = await router.route(AITask(id="s", type="summarization", prompt="sum up"), run)
    review = await router.route(AITask(id="c", type="code_review", prompt="review"), run)
    # Haiku ($1/$5) beats the middle provider ($2/$10) for a summary; for a review the tier is sonnet ($3/$15).
    assert (summary.provider_id, summary.attempts[0].model) == ("tiered", "claude-haiku-4-5")
    assert review.provider_id == "middle"
    await router.registry.aclose()
