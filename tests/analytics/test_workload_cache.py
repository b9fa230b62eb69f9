"""A what-if replay's recorded workload leaves out tasks the response cache answered: they called no provider and
would be answered the same way, free, under any strategy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from analytics import build_workload
from ledger import CACHE_PROVIDER, AttemptRecord
from providers import TokenUsage

SINCE = datetime(2026, 11, 1, tzinfo=UTC)


def test_cache_hits_are_no_work_to_replay_and_cache_no_provider_to_learn() -> None:
    at = SINCE + timedelta(hours=1)
    common = {"run_id": "r", "task_type": "review", "attempt": 1, "outcome": "success", "started_at": at}
    attempts = [
        AttemptRecord(task_id="a", provider_id="api", finished_at=at, usage=TokenUsage(input=9), **common),
        AttemptRecord(task_id="b", provider_id=CACHE_PROVIDER, finished_at=at, cache_hit=True, **common),
    ]
    workload = build_workload(SINCE, SINCE + timedelta(days=1), attempts, {}, default_max_output_tokens=1024)
    assert [item.task_id for item in workload.items] == ["a"]
    assert set(workload.profiles) == {"api"}
