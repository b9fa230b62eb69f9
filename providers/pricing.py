"""List prices by model family, for models that no price table names.

Services answer with ids that tables rarely list verbatim: dated ids (`claude-opus-4-1-20250805`), `-latest`
aliases (`claude-3-7-sonnet-latest`), older spellings (`claude-3-5-haiku-20241022`), vendor prefixes
(`anthropic/claude-sonnet-4.5`, `openai/gpt-4o`, `anthropic.claude-3-5-sonnet-20240620-v1:0`). Pricing such a
model at $0 under-reports spend and lets budgets overrun, so providers fall back to these families before
anything else. USD per million tokens; `cache_write` is the 5-minute cache write rate.
"""

from __future__ import annotations

import re

from providers.models import Price

_DATE_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")

# anthropic.com/pricing
CLAUDE_OPUS_4_5 = Price(input=5.0, output=25.0, cache_read=0.50, cache_write=6.25)
CLAUDE_OPUS_4 = Price(input=15.0, output=75.0, cache_read=1.50, cache_write=18.75)  # Opus 3, 4 and 4.1 too
CLAUDE_SONNET = Price(input=3.0, output=15.0, cache_read=0.30, cache_write=3.75)  # Sonnet 3.5 to 4.5
CLAUDE_HAIKU_4_5 = Price(input=1.0, output=5.0, cache_read=0.10, cache_write=1.25)
CLAUDE_HAIKU_3_5 = Price(input=0.80, output=4.0, cache_read=0.08, cache_write=1.0)
CLAUDE_HAIKU_3 = Price(input=0.25, output=1.25, cache_read=0.03, cache_write=0.30)

# openai.com/api/pricing
OPENAI_PRICES: dict[str, Price] = {
    "gpt-5": Price(input=1.25, output=10.0, cache_read=0.125),
    "gpt-5-mini": Price(input=0.25, output=2.0, cache_read=0.025),
    "gpt-5-nano": Price(input=0.05, output=0.40, cache_read=0.005),
    "gpt-4.1": Price(input=2.0, output=8.0, cache_read=0.5),
    "gpt-4.1-mini": Price(input=0.4, output=1.6, cache_read=0.1),
    "gpt-4.1-nano": Price(input=0.1, output=0.4, cache_read=0.025),
    "gpt-4o": Price(input=2.5, output=10.0, cache_read=1.25),
    "gpt-4o-mini": Price(input=0.15, output=0.6, cache_read=0.075),
    "o1": Price(input=15.0, output=60.0, cache_read=7.5),
    "o1-mini": Price(input=1.1, output=4.4, cache_read=0.55),
    "o3": Price(input=2.0, output=8.0, cache_read=0.5),
    "o3-mini": Price(input=1.1, output=4.4, cache_read=0.55),
    "o4-mini": Price(input=1.1, output=4.4, cache_read=0.275),
}

# `claude-opus-4-1`, `claude-sonnet-4.5`, `claude-opus-4-20250514` (a date is not a minor version) ...
_CLAUDE_NEW = re.compile(r"claude-(opus|sonnet|haiku)-(\d{1,2})(?:[-.](\d{1,2}))?(?!\d)")
# ... and the older `claude-3-7-sonnet-latest`, `claude-3-opus-20240229`.
_CLAUDE_OLD = re.compile(r"claude-(\d{1,2})(?:[-.](\d{1,2}))?-(opus|sonnet|haiku)")
# A bare family name (`opus`, the CLI's alias) means its newest model.
_CLAUDE_FAMILY = re.compile(r"(?<![a-z])(opus|sonnet|haiku)(?![a-z])")


def undated(model: str) -> str:
    """`claude-sonnet-4-5-20250929` -> `claude-sonnet-4-5`; `gpt-4o-2024-08-06` -> `gpt-4o`."""
    return _DATE_SUFFIX.sub("", model)


def claude_family_price(model: str) -> Price | None:
    """The list price of the Claude model family and version named in `model`, or None if it names none."""
    name = model.lower()
    family: str | None = None
    version: tuple[int, int] | None = None
    if new := _CLAUDE_NEW.search(name):
        family, version = new[1], (int(new[2]), int(new[3] or 0))
    elif old := _CLAUDE_OLD.search(name):
        family, version = old[3], (int(old[1]), int(old[2] or 0))
    elif bare := _CLAUDE_FAMILY.search(name):
        family = bare[1]
    if family == "opus":
        return CLAUDE_OPUS_4_5 if version is None or version >= (4, 5) else CLAUDE_OPUS_4
    if family == "sonnet":
        return CLAUDE_SONNET
    if family == "haiku":
        if version is None or version >= (4, 0):
            return CLAUDE_HAIKU_4_5
        return CLAUDE_HAIKU_3_5 if version >= (3, 5) else CLAUDE_HAIKU_3
    return None


def openai_family_price(model: str) -> Price | None:
    """The price of the longest OpenAI model name that `model` starts with (`gpt-4o-audio-preview` -> gpt-4o)."""
    name = undated(model.lower().rsplit("/", 1)[-1])  # OpenRouter's `openai/gpt-4o`
    matches = [known for known in OPENAI_PRICES if name == known or name.startswith(known + "-")]
    return OPENAI_PRICES[max(matches, key=len)] if matches else None
