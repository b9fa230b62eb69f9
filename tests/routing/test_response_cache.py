"""The response cache: an identical task of the same team answered within the TTL is served from the ledger at no
cost, without calling a provider (requests counted on a local OpenAI-compatible stand-in), and recorded as a cache
hit naming the answer it came from; anything that changes what is asked, the team, the TTL, `cache: false` or a
providers file without the cache means a real call."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from ledger import CACHE_PROVIDER, AttemptRecord, CachedAnswer, Ledger
from providers import AITask, utc_now
from routing import CacheLookup, ConfigError, ProviderRegistry, Router, RunInfo, ledger_lookup, parse_config
from tests.fakes.fake_llm_servers import FakeOpenAI

PRICES = {"*": {"input": 1000.0, "output": 2000.0}}  # 9 in, 12 out tokens per answer: $0.033 a call


class WallClock:
    """The wall clock the cache's TTL is measured on, moved by the test."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utc_now() + self.offset


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(auth=None) as fake:
        yield fake


def _router(
    server: FakeOpenAI,
    ledger: Ledger,
    clock: WallClock | None = None,
    cache: dict[str, Any] | None = None,
    lookup: CacheLookup | None = None,
) -> Router:
    config = parse_config(
        {
            "cache": {"enabled": True, "ttl_s": 3600} if cache is None else cache,
            "providers": {
                "api": {
                    "type": "openai_compatible",
                    "base_url": server.url + "/v1",
                    "model": "gpt-test",
                    "prices": PRICES,
                }
            },
        },
        "<test>",
    )
    registry = ProviderRegistry.from_configs(config.providers)
    return Router(
        registry,
        config,
        recorder=lambda attempt: ledger.record_attempts([attempt]),
        health_checks=False,
        cache_lookup=lookup or ledger_lookup(ledger),
        wall_clock=clock or WallClock(),
    )


def _task(task_id: str, **fields: Any) -> AITask:
    return AITask(id=task_id, type="code_review", prompt="Review PR 7", **fields)


def _calls(server: FakeOpenAI) -> int:
    return sum(1 for r in server.requests if r.method == "POST")


async def test_an_identical_task_is_served_from_the_cache_at_no_cost_naming_its_source(
    server: FakeOpenAI, ledger: Ledger
) -> None:
    router = _router(server, ledger)
    first = await router.route(_task("a"), RunInfo(run_id="r1"))
    assert first.provider_id == "api" and first.cost_usd > 0 and _calls(server) == 1
    second = await router.route(_task("b"), RunInfo(run_id="r2"))
    assert _calls(server) == 1  # no provider was called
    assert second.status == "completed" and second.provider_id == CACHE_PROVIDER
    assert second.response is not None and second.response.text == first.response.text  # type: ignore[union-attr]
    (hit,) = ledger.attempts("r2")
    assert (hit.provider_id, hit.outcome, hit.cost_usd, hit.usage.total) == (CACHE_PROVIDER, "success", 0.0, 0)
    assert hit.cache_hit and hit.cache_source == "r1:a:1" and hit.model == "gpt-4o-2024-08-06"
    assert hit.cache_saved_usd == pytest.approx(first.cost_usd)
    assert second.decision is not None and second.decision.cache is not None
    assert second.decision.document()["cache"] == {
        "run_id": "r1",
        "task_id": "a",
        "provider_id": "api",
        "saved_usd": pytest.approx(first.cost_usd),
    }
    # A third is served from the original too (hits are never sources: an answer's age counts from its call).
    await router.route(_task("c"), RunInfo(run_id="r3"))
    assert ledger.attempts("r3")[0].cache_source == "r1:a:1" and _calls(server) == 1


async def test_an_answer_older_than_the_ttl_is_not_served(server: FakeOpenAI, ledger: Ledger) -> None:
    clock = WallClock()
    router = _router(server, ledger, clock)
    await router.route(_task("a"), RunInfo(run_id="r1"))
    clock.offset = timedelta(seconds=3590)
    assert (await router.route(_task("b"), RunInfo(run_id="r2"))).provider_id == CACHE_PROVIDER
    clock.offset = timedelta(seconds=3610)
    assert (await router.route(_task("c"), RunInfo(run_id="r3"))).provider_id == "api"
    assert _calls(server) == 2


async def test_answers_never_cross_teams_and_no_team_is_a_team_of_its_own(server: FakeOpenAI, ledger: Ledger) -> None:
    router = _router(server, ledger)
    await router.route(_task("a", team="legal"), RunInfo(run_id="r1"))
    assert (await router.route(_task("b", team="ml"), RunInfo(run_id="r2"))).provider_id == "api"
    assert (await router.route(_task("c"), RunInfo(run_id="r3"))).provider_id == "api"
    # The batch's team counts as the task's.
    assert (await router.route(_task("d"), RunInfo(run_id="r4", team="legal"))).provider_id == CACHE_PROVIDER
    assert (await router.route(_task("e"), RunInfo(run_id="r5"))).provider_id == CACHE_PROVIDER  # no team's own
    assert _calls(server) == 3


@pytest.mark.parametrize(
    ("changed", "why"),
    [
        ({"context": {"analyze": "a different map"}}, "upstream context"),
        ({"max_output_tokens": 2048}, "output limit"),
        ({"type": "bug_fix"}, "task type"),
        ({"prompt": "Review PR 8"}, "prompt"),
        ({"metadata": {"model": "gpt-big"}}, "model preference"),
        ({"workdir": "/src/other"}, "workdir"),
    ],
)
async def test_whatever_changes_what_is_asked_changes_the_key(
    server: FakeOpenAI, ledger: Ledger, changed: dict[str, Any], why: str
) -> None:
    router = _router(server, ledger)
    await router.route(_task("a", context={"analyze": "the map"}), RunInfo(run_id="r1"))
    asked = _task("b", context={"analyze": "the map"}).model_copy(update=changed)
    assert (await router.route(asked, RunInfo(run_id="r2"))).provider_id == "api", why
    assert _calls(server) == 2


async def test_a_task_with_cache_false_is_neither_served_nor_stored(server: FakeOpenAI, ledger: Ledger) -> None:
    router = _router(server, ledger)
    await router.route(_task("a", cache=False), RunInfo(run_id="r1"))
    assert ledger.attempts("r1")[0].cache_key is None
    assert (await router.route(_task("b"), RunInfo(run_id="r2"))).provider_id == "api"
    assert (await router.route(_task("c", cache=False), RunInfo(run_id="r3"))).provider_id == "api"
    assert _calls(server) == 3


async def test_the_cache_is_off_unless_the_providers_file_turns_it_on(server: FakeOpenAI, ledger: Ledger) -> None:
    for cache in ({}, {"enabled": False}):
        router = _router(server, ledger, cache=cache)
        await router.route(_task("a"), RunInfo(run_id="r1"))
        assert (await router.route(_task("b"), RunInfo(run_id="r2"))).provider_id == "api"
    assert _calls(server) == 4
    assert all(a.cache_key is None for a in ledger.attempts("r1"))


async def test_a_lookup_that_fails_is_a_miss(server: FakeOpenAI, ledger: Ledger) -> None:
    async def database_away(key: str, team: str | None, since: datetime) -> CachedAnswer | None:
        raise OSError("database away")

    router = _router(server, ledger, lookup=database_away)
    await router.route(_task("a"), RunInfo(run_id="r1"))
    result = await router.route(_task("b"), RunInfo(run_id="r2"))
    assert result.status == "completed" and result.provider_id == "api"


def test_the_ledger_lookup_keeps_to_the_team_the_ttl_and_answers_providers_gave(ledger: Ledger) -> None:
    now = utc_now()
    answer = {"task_type": "code_review", "outcome": "success", "output": "ok", "cache_key": "k", "cost_usd": 0.5}
    ledger.record_attempts(
        [
            AttemptRecord(
                run_id="r",
                task_id="a",
                provider_id="api",
                attempt=1,
                team="legal",
                started_at=now - timedelta(minutes=10),
                finished_at=now - timedelta(minutes=9),
                **answer,
            ),
            AttemptRecord(
                run_id="r",
                task_id="b",
                provider_id=CACHE_PROVIDER,
                attempt=1,
                team="ml",
                cache_hit=True,
                started_at=now,
                finished_at=now,
                **answer,
            ),
        ]
    )
    found = ledger.cached_answer("k", "legal", now - timedelta(hours=1))
    assert found is not None and (found.source, found.output, found.cost_usd) == ("r:a:1", "ok", 0.5)
    assert ledger.cached_answer("k", "ml", now - timedelta(hours=1)) is None  # a hit is never a source
    assert ledger.cached_answer("k", None, now - timedelta(hours=1)) is None
    assert ledger.cached_answer("k", "legal", now - timedelta(minutes=5)) is None
    assert ledger.cached_answer("other", "legal", now - timedelta(hours=1)) is None


def test_cache_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"cache\.ttl_s"):
        parse_config({"cache": {"enabled": True, "ttl_s": 0}, "providers": {"m": {"type": "local_mock"}}}, "<t>")
    with pytest.raises(ConfigError, match=r"cache\.ttl"):
        parse_config({"cache": {"ttl": 5}, "providers": {"m": {"type": "local_mock"}}}, "<t>")
    with pytest.raises(ConfigError, match="reserved name"):
        parse_config({"providers": {"cache": {"type": "local_mock"}}}, "<t>")


async def test_the_adaptive_memory_learns_nothing_from_cache_hits(server: FakeOpenAI, ledger: Ledger) -> None:
    router = _router(server, ledger)
    await router.route(_task("a"), RunInfo(run_id="r1"))
    await router.route(_task("b"), RunInfo(run_id="r2"))
    history = ledger.history(utc_now() - timedelta(hours=1))
    assert [(h.provider_id, h.attempts) for h in history] == [("api", 1)]
