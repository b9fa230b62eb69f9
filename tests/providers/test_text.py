"""Provider text made storable and forwardable: the escape is exact, dependents get well-formed text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers import name_problem, restored, storable, well_formed
from providers.text import ESCAPED

HALF_EMOJI = "\ud83d"  # what json.loads('"\\ud83d"') gives
# Any code point, with the awkward ones (surrogates, NUL, the escape's own marks, ESC) made common.
ANY_TEXT = st.lists(
    st.one_of(
        st.characters(codec=None, categories=["L", "M", "N", "P", "S", "Z", "C"]),
        st.sampled_from([HALF_EMOJI, "\udc00", "\x00", ESCAPED, "\ufdd1", "\x1b", "\ufffd", "0041", "FDD1"]),
    )
).map("".join)


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "",
        "é and 😀",
        f"half {HALF_EMOJI} emoji",
        "nul\x00inside",
        "\x1b]0;title\x07",
        f"{ESCAPED}starts",
        "\ufdd1x",
        f"{HALF_EMOJI}\ufdd10041 looks like an escape",
    ],
)
def test_every_text_comes_back_exactly(text: str) -> None:
    for nul_ok in (True, False):
        stored = storable(text, nul_ok=nul_ok)
        assert restored(stored) == text
        stored.encode("utf-8")  # always encodable: no database refuses it for its characters
        if not nul_ok:
            assert "\x00" not in stored


def test_clean_text_is_stored_as_it_is() -> None:
    for text in ("plain", "é and 😀", "\x1b[2J escapes are storable", "nul\x00 on SQLite"):
        assert storable(text, nul_ok=True) == text
    assert storable("nul\x00", nul_ok=False) != "nul\x00"


def test_escaped_form_is_documented_one() -> None:
    assert storable(f"a{HALF_EMOJI}\x00", nul_ok=False) == f"{ESCAPED}a\ufdd1D83D\ufdd10000"


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT, st.booleans())
def test_storable_is_reversible_for_any_string(text: str, nul_ok: bool) -> None:
    stored = storable(text, nul_ok=nul_ok)
    stored.encode("utf-8")
    assert restored(stored) == text


def test_dependents_get_lone_surrogates_as_replacement_characters() -> None:
    assert well_formed(f"a{HALF_EMOJI}b") == "a\ufffdb"
    assert well_formed("\ud83d\ude00") == "😀"  # a pair written as two code points is the character
    assert well_formed("ok 😀") == "ok 😀"


@given(ANY_TEXT)
def test_well_formed_is_always_encodable(text: str) -> None:
    well_formed(text).encode("utf-8")


def test_names_with_control_characters_are_refused() -> None:
    assert name_problem("review-1") is None
    assert name_problem("ünïcode name") is None
    assert "U+0000 at position 2" in (name_problem("ab\x00") or "")
    assert "U+001B" in (name_problem("\x1b]0;x\x07") or "")
    assert "U+202E" in (name_problem("a\u202eb") or "")
    assert name_problem(HALF_EMOJI) is not None
