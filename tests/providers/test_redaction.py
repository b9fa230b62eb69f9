"""Secrets are scrubbed from quoted text before it is shortened, including pieces of a key cut at an edge."""

from __future__ import annotations

import pytest

from providers.redaction import redact, shorten, tail

KEY = "gw-live-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def test_every_occurrence_is_replaced_longest_first() -> None:
    inner = KEY[:20]
    assert redact(f"a {KEY} b {KEY} c {inner}", [inner, KEY], "***") == "a *** b *** c ***"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"error: bad key {KEY[:17]}", "error: bad key ***"),  # someone cut the text inside the key
        (f"{KEY[-15:]} was rejected", "*** was rejected"),  # the tail of a stderr that started mid-key
        (f"ends with {KEY[:5]}", f"ends with {KEY[:5]}"),  # too short a piece to say anything
    ],
)
def test_a_key_cut_at_either_edge_is_still_redacted(text: str, expected: str) -> None:
    assert redact(text, [KEY], "***") == expected


def test_short_or_missing_values_are_not_secrets() -> None:
    assert redact("pass 1234 and None", ["1234", None, ""], "***") == "pass 1234 and None"


def test_redacting_then_shortening_never_lets_half_a_key_through() -> None:
    text = "x" * 280 + KEY + " tail"
    quoted = shorten(redact(text, [KEY], "***"), 300)
    assert len(quoted) <= 300 and KEY[:8] not in quoted
    stderr = "head " + KEY + "y" * 280
    assert KEY[-8:] not in tail(redact(stderr, [KEY], "***"), 300)


def test_shorten_and_tail_mark_what_they_cut() -> None:
    assert shorten("abcdef", 4) == "abc…" and shorten("abc", 4) == "abc"
    assert tail("abcdef", 4) == "…def" and tail("abc", 4) == "abc"


def test_a_secret_is_redacted_raw_and_url_encoded() -> None:
    from urllib.parse import quote, quote_plus

    key = "sk-live/abc+def=gh ij"
    text = f"raw {key} quoted {quote(key, safe='')} plus {quote_plus(key)} end"
    assert redact(text, [key], "[x]") == "raw [x] quoted [x] plus [x] end"


def test_credentials_written_into_a_url_are_secrets() -> None:
    from providers.redaction import url_credentials

    assert url_credentials("https://bob:p%40ss-word-99@api.test/v1") == ["bob", "p@ss-word-99"]
    assert url_credentials("https://api.test/v1") == [] and url_credentials(None) == []
