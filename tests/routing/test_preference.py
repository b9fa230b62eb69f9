"""A task's provider or model preference: tried first when that provider can take the task, else routing goes
on as usual and the decision says why."""

from __future__ import annotations

from ledger import RouteDecision
from providers import AITask
from tests.routing.engine_kit import engine


def _task(**metadata: str) -> AITask:
    return AITask(id="t", type="code_review", prompt="review", metadata=metadata)


async def test_a_preferred_provider_is_tried_first_against_priority() -> None:
    router = engine({"first": {"priority": 1}, "second": {"priority": 2}})
    result = await router.route(_task(provider="second"))
    assert result.provider_id == "second"
    decision = result.decision
    assert decision is not None and decision.order[0] == "second"
    assert decision.preference is not None and decision.preference.honored
    assert decision.preference.reason == "tried first"


async def test_a_preferred_model_picks_the_provider_serving_it() -> None:
    router = engine({"first": {"priority": 1}, "second": {"priority": 2, "model": "mock-big"}})
    result = await router.route(_task(model="mock-big"))
    assert result.provider_id == "second"


async def test_a_preferred_provider_that_cannot_take_the_task_is_passed_over_with_the_reason() -> None:
    router = engine({"first": {"priority": 1}, "narrow": {"priority": 2, "capabilities": ["summarization"]}})
    result = await router.route(_task(provider="narrow"))
    assert result.provider_id == "first"
    preference = result.decision.preference  # type: ignore[union-attr]
    assert preference is not None and not preference.honored
    assert preference.reason == "narrow cannot take the task now (capability); routed as usual"


async def test_an_unknown_preferred_provider_is_named() -> None:
    router = engine({"first": {"priority": 1}})
    result = await router.route(_task(provider="ghost"))
    assert result.provider_id == "first"
    assert "no provider 'ghost' is configured" in result.decision.preference.reason  # type: ignore[union-attr]


async def test_a_failing_preferred_provider_fails_over() -> None:
    router = engine({"first": {"priority": 1}, "broken": {"priority": 2, "failure_rate": 1.0}})
    result = await router.route(_task(provider="broken"))
    assert [a.provider_id for a in result.attempts] == ["broken", "first"]
    assert result.provider_id == "first"


async def test_the_preference_survives_the_ledger_round_trip() -> None:
    router = engine({"first": {"priority": 1}, "second": {"priority": 2}})
    decision = (await router.route(_task(provider="second"))).decision
    assert decision is not None
    again = RouteDecision.model_validate(decision.document())
    assert again == decision and again.document()["preference"]["provider"] == "second"
    without = (await router.route(AITask(id="u", type="code_review", prompt="p"))).decision
    assert "preference" not in without.document()  # type: ignore[union-attr]
