"""A team's `allowed_providers` and `prefer` in the providers file: routing keeps the team's tasks on the
providers it allows and tries the ones it prefers first, in its order; other teams' tasks are not affected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from providers import AITask
from routing.config import ConfigError, parse_config
from routing.router import RunInfo
from tests.routing.engine_kit import engine

PROVIDERS = {"cheap": {"priority": 1}, "house": {"priority": 2}, "vendor": {"priority": 3}}


def _task(task_id: str = "t", team: str | None = None) -> AITask:
    return AITask(id=task_id, type="code_review", prompt="review", team=team)


async def test_a_team_uses_only_the_providers_it_allows_and_other_teams_are_not_affected() -> None:
    router = engine(PROVIDERS, teams={"legal": {"allowed_providers": ["house", "vendor"]}})
    result = await router.route(_task(team="legal"))
    assert result.provider_id == "house"
    assert result.decision is not None and result.decision.skipped["cheap"] == "not allowed for team legal"
    assert (await router.route(_task("u", team="platform"))).provider_id == "cheap"
    assert (await router.route(_task("v"))).provider_id == "cheap"


async def test_the_batch_team_applies_when_the_task_names_none() -> None:
    router = engine(PROVIDERS, teams={"legal": {"allowed_providers": ["vendor"]}})
    result = await router.route(_task(), RunInfo(run_id="r", team="legal"))
    assert result.provider_id == "vendor"


async def test_a_team_tries_the_providers_it_prefers_first_in_its_order_then_the_rest() -> None:
    providers: dict[str, dict[str, Any]] = {**PROVIDERS, "vendor": {"priority": 3, "failure_rate": 1.0}}
    router = engine(providers, teams={"ml": {"prefer": ["vendor", "house"]}})
    result = await router.route(_task(team="ml"))
    assert result.decision is not None and result.decision.order == ("vendor", "house", "cheap")
    assert [a.provider_id for a in result.attempts] == ["vendor", "house"]  # fails over in the team's order


async def test_a_task_of_a_team_that_allows_no_provider_able_to_take_it_fails_naming_the_team() -> None:
    router = engine(
        {"cheap": {"priority": 1}, "narrow": {"capabilities": ["summarization"]}},
        teams={"legal": {"allowed_providers": ["narrow"]}},
    )
    result = await router.route(_task(team="legal"))
    assert result.status == "failed" and not result.attempts
    assert result.decision is not None and result.decision.skipped == {
        "cheap": "not allowed for team legal",
        "narrow": "capability",
    }


@pytest.mark.parametrize(
    ("team", "problem"),
    [
        ({"prefer": ["house", "vendr"]}, "teams.ml.prefer[1]: no provider 'vendr' is configured"),
        ({"allowed_providers": ["chep"]}, "teams.ml.allowed_providers[0]: no provider 'chep' is configured"),
        (
            {"allowed_providers": ["house"], "prefer": ["cheap"]},
            "teams.ml.prefer[0]: 'cheap' is not in the team's allowed_providers",
        ),
        ({"prefer": "house"}, "teams.ml.prefer"),
    ],
)
def test_team_settings_naming_what_is_not_configured_are_refused(
    tmp_path: Path, team: dict[str, Any], problem: str
) -> None:
    doc = {
        "teams": {"ml": team},
        "providers": {name: {"type": "local_mock", **values} for name, values in PROVIDERS.items()},
    }
    with pytest.raises(ConfigError) as raised:
        parse_config(doc, str(tmp_path / "providers.yaml"))
    assert problem in str(raised.value)
