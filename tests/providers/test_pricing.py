"""Family prices for model ids no table lists: dated ids, -latest aliases, old spellings, vendor prefixes."""

from __future__ import annotations

import pytest

from providers.models import Price
from providers.pricing import (
    CLAUDE_HAIKU_3,
    CLAUDE_HAIKU_3_5,
    CLAUDE_HAIKU_4_5,
    CLAUDE_OPUS_4,
    CLAUDE_OPUS_4_5,
    CLAUDE_SONNET,
    OPENAI_PRICES,
    claude_family_price,
    openai_family_price,
    undated,
)


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("claude-opus-4-5-20251101", CLAUDE_OPUS_4_5),
        ("claude-opus-4-1-20250805", CLAUDE_OPUS_4),
        ("claude-opus-4-0", CLAUDE_OPUS_4),
        ("claude-opus-4-20250514", CLAUDE_OPUS_4),  # a date is not a minor version
        ("claude-3-opus-20240229", CLAUDE_OPUS_4),
        ("opus", CLAUDE_OPUS_4_5),  # the CLI's alias: the newest Opus
        ("claude-3-7-sonnet-latest", CLAUDE_SONNET),
        ("claude-sonnet-4-20250514", CLAUDE_SONNET),
        ("anthropic/claude-sonnet-4.5", CLAUDE_SONNET),  # OpenRouter
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", CLAUDE_SONNET),  # Bedrock
        ("claude-3-5-haiku-latest", CLAUDE_HAIKU_3_5),
        ("claude-3-haiku-20240307", CLAUDE_HAIKU_3),
        ("claude-haiku-4-5-20251001", CLAUDE_HAIKU_4_5),
        ("Claude-Opus-4-1", CLAUDE_OPUS_4),
    ],
)
def test_claude_models_are_priced_by_family_and_version(model: str, price: Price) -> None:
    assert claude_family_price(model) == price


@pytest.mark.parametrize("model", ["llama3.1", "gpt-4o", "claude", "magnum-opusculum"])
def test_names_without_a_claude_family_have_no_claude_price(model: str) -> None:
    assert claude_family_price(model) is None


@pytest.mark.parametrize(
    ("model", "known"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-audio-preview", "gpt-4o"),
        ("openai/gpt-5-nano", "gpt-5-nano"),
        ("gpt-5-chat-latest", "gpt-5"),
        ("o3-mini-2025-01-31", "o3-mini"),
    ],
)
def test_openai_variants_take_the_longest_known_name(model: str, known: str) -> None:
    assert openai_family_price(model) == OPENAI_PRICES[known]


@pytest.mark.parametrize("model", ["llama3.1", "gpt-3.5-turbo", "qwen2.5-7b-instruct", "gpt-4oo"])
def test_unknown_openai_compatible_models_have_no_family(model: str) -> None:
    assert openai_family_price(model) is None


def test_undated_drops_either_date_spelling() -> None:
    assert undated("claude-sonnet-4-5-20250929") == "claude-sonnet-4-5"
    assert undated("gpt-4o-2024-08-06") == "gpt-4o"
    assert undated("gpt-4o") == "gpt-4o"
