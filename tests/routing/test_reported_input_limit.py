"""A provider that reports a per-minute input-token limit (Anthropic's `anthropic-ratelimit-input-tokens-*` headers,
on every response) can never take a prompt larger than it: the vendor refuses it with a 429 however long the call
waits. Routing learns the limit from the headers and leaves such a provider out of that task's plan (skipped as
`prompt_too_large`), instead of spending an attempt on a refusal that also blocks the provider for everyone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from providers import AITask
from routing import ProviderRegistry, Router, RunInfo, parse_config
from tests.fakes.fake_llm_servers import FakeAnthropic, Scripted, anthropic_message, anthropic_ratelimit_headers

KEY = "sk-ant-api03-LIMIT-0123456789abcdef"
RESET = "2026-01-01T00:01:00Z"


@pytest.fixture
def small() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def roomy() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=KEY) as fake:
        yield fake


def _answer(limit: int) -> Scripted:
    """An answer whose headers report an input-token limit of `limit` a minute (most of it left)."""
    return Scripted(200, anthropic_message("ok"), anthropic_ratelimit_headers(tokens=(limit, limit - 100, RESET)))


def _router(small: FakeAnthropic, roomy: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Router:
    monkeypatch.setenv("LIMIT_TEST_KEY", KEY)
    common = {"type": "anthropic", "api_key_env": "LIMIT_TEST_KEY", "prices": {"*": {"input": 3.0, "output": 15.0}}}
    doc = {
        "strategy": "priority_based",
        "providers": {
            "small": {**common, "base_url": small.url, "priority": 1},
            "roomy": {**common, "base_url": roomy.url, "priority": 2},
        },
    }
    config = parse_config(doc, str(tmp_path / "providers.yaml"))
    return Router(ProviderRegistry.from_configs(config.providers), config, health_checks=False)


def _task(task_id: str, prompt_tokens: int) -> AITask:
    return AITask(id=task_id, type="summarization", prompt="x" * (prompt_tokens * 4))


async def test_a_prompt_over_the_reported_input_limit_skips_the_provider(
    small: FakeAnthropic, roomy: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    small.script(_answer(1_000), _answer(1_000))
    router = _router(small, roomy, monkeypatch, tmp_path)
    run = RunInfo(run_id="r")
    try:
        first = await router.route(_task("first", 100), run)  # learns the limit from the answer's headers
        assert first.provider_id == "small"
        large = await router.route(_task("large", 2_000), run)
        assert large.status == "completed" and large.provider_id == "roomy"
        assert large.draft is not None
        reason = large.draft.skipped["small"]
        assert reason.startswith("prompt_too_large") and "2,000 input tokens" in reason and "1,000" in reason
        # Not sent there at all: no attempt spent on a refusal, and the provider stays usable for small prompts.
        assert [a.provider_id for a in large.attempts] == ["roomy"]
        fits = await router.route(_task("fits", 900), run)
        assert fits.provider_id == "small"
        assert len(small.requests) == 2 and len(roomy.requests) == 1
    finally:
        await router.registry.aclose()


async def test_a_higher_reported_limit_lets_large_prompts_back(
    small: FakeAnthropic, roomy: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    small.script(_answer(1_000), _answer(100_000))
    router = _router(small, roomy, monkeypatch, tmp_path)
    run = RunInfo(run_id="r")
    try:
        assert (await router.route(_task("first", 100), run)).provider_id == "small"
        assert (await router.route(_task("large", 2_000), run)).provider_id == "roomy"
        assert (await router.route(_task("tier-up", 100), run)).provider_id == "small"  # reports 100,000 now
        assert (await router.route(_task("large-again", 2_000), run)).provider_id == "small"
    finally:
        await router.registry.aclose()


async def test_a_prompt_exactly_at_the_limit_is_sent(
    small: FakeAnthropic, roomy: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    small.script(_answer(1_000))
    router = _router(small, roomy, monkeypatch, tmp_path)
    run = RunInfo(run_id="r")
    try:
        await router.route(_task("first", 100), run)
        assert (await router.route(_task("at-limit", 1_000), run)).provider_id == "small"
    finally:
        await router.registry.aclose()
