"""The standard synthetic week: the same seed draws the same week, and its distributions are as documented."""

from __future__ import annotations

import statistics
from collections import Counter

import pytest

from planning import (
    BATCH_DEADLINE_S,
    CRITICAL_DEADLINE_S,
    DEFERRABLE_TYPES,
    INCIDENT_RATES,
    TASK_PROFILES,
    WEEK_S,
    SyntheticWeek,
    synthetic_week,
)

DAY_S = 24 * 3600


@pytest.fixture(scope="module")
def week() -> SyntheticWeek:
    return synthetic_week(3, 4000)


def test_a_seed_draws_the_same_week_every_time() -> None:
    assert synthetic_week(5, 300) == synthetic_week(5, 300)


def test_another_seed_draws_another_week() -> None:
    one, two = synthetic_week(5, 300), synthetic_week(6, 300)
    assert one.tasks != two.tasks
    assert one.incidents != two.incidents


def test_tasks_are_numbered_in_arrival_order_within_the_week(week: SyntheticWeek) -> None:
    arrivals = [t.arrival_s for t in week.tasks]
    assert arrivals == sorted(arrivals)
    assert arrivals[0] >= 0 and arrivals[-1] < WEEK_S
    assert [t.id for t in week.tasks] == [f"t{n:05d}" for n in range(1, 4001)]


def test_the_task_type_mix_is_the_documented_one(week: SyntheticWeek) -> None:
    counts = Counter(t.type for t in week.tasks)
    assert set(counts) == set(TASK_PROFILES)
    for name, profile in TASK_PROFILES.items():
        assert counts[name] / len(week.tasks) == pytest.approx(profile.share, abs=0.025), name


def test_token_sizes_stay_in_each_types_range_around_its_median(week: SyntheticWeek) -> None:
    for name, profile in TASK_PROFILES.items():
        tasks = [t for t in week.tasks if t.type == name]
        prompts, outputs = [t.prompt_tokens for t in tasks], [t.output_tokens for t in tasks]
        assert profile.prompt.low <= min(prompts) and max(prompts) <= profile.prompt.high, name
        assert profile.output.low <= min(outputs) and max(outputs) <= profile.output.high, name
        assert statistics.median(prompts) == pytest.approx(profile.prompt.median, rel=0.15), name
        assert statistics.median(outputs) == pytest.approx(profile.output.median, rel=0.15), name
        assert {t.max_output_tokens for t in tasks} == {profile.max_output_tokens}


def test_bug_fixes_are_long_and_classifications_short(week: SyntheticWeek) -> None:
    def median_prompt(kind: str) -> float:
        return statistics.median(t.prompt_tokens for t in week.tasks if t.type == kind)

    assert median_prompt("bug_fix") > 10 * median_prompt("classification")


def test_deferrable_work_arrives_as_nightly_batches_with_a_12_hour_deadline(week: SyntheticWeek) -> None:
    deferrable = [t for t in week.tasks if t.deferrable]
    eligible = [t for t in week.tasks if t.type in DEFERRABLE_TYPES]
    assert len(deferrable) / len(eligible) == pytest.approx(0.4, abs=0.04)
    assert {t.type for t in deferrable} <= DEFERRABLE_TYPES
    assert {(t.priority, t.team, t.deadline_s) for t in deferrable} == {("low", "data", BATCH_DEADLINE_S)}
    assert all(2 * 3600 <= t.arrival_s % DAY_S < 2 * 3600 + 60 for t in deferrable)


def test_interactive_work_keeps_working_hours_priorities_and_deadlines(week: SyntheticWeek) -> None:
    interactive = [t for t in week.tasks if not t.deferrable]
    working = [t for t in interactive if 7 <= (t.arrival_s % DAY_S) / 3600 < 21 and t.arrival_s < 5 * DAY_S]
    assert len(working) / len(interactive) > 0.8
    priorities = Counter(t.priority for t in interactive)
    assert priorities["critical"] / len(interactive) == pytest.approx(0.03, abs=0.01)
    assert priorities["normal"] / len(interactive) == pytest.approx(0.65, abs=0.03)
    assert {t.deadline_s for t in interactive if t.priority == "critical"} == {CRITICAL_DEADLINE_S}
    assert {t.deadline_s for t in interactive if t.priority != "critical"} == {None}
    assert {t.team for t in interactive} == {"platform", "support"}


def test_affinity_names_a_repository_for_code_work_only(week: SyntheticWeek) -> None:
    code = [t for t in week.tasks if t.type in ("code_review", "bug_fix")]
    assert sum(t.affinity is not None for t in code) / len(code) == pytest.approx(0.6, abs=0.05)
    assert all(t.affinity is None for t in week.tasks if t.type not in ("code_review", "bug_fix"))
    repos = Counter(t.affinity for t in code if t.affinity)
    assert repos.most_common(1)[0][0] == "repo-01"  # a few busy repositories


def test_every_vendor_has_an_incident_within_the_week(week: SyntheticWeek) -> None:
    assert {i.vendor for i in week.incidents} == set(INCIDENT_RATES)
    for incident in week.incidents:
        low, high = INCIDENT_RATES[incident.vendor].minutes
        assert low * 60 <= incident.end_s - incident.start_s <= high * 60
        assert incident.outcome in INCIDENT_RATES[incident.vendor].outcomes
