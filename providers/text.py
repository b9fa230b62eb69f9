"""Text that providers return, made safe to store and to forward, without losing a character.

Any Unicode string can come back from a provider: JSON allows a lone surrogate (`"\\ud83d"`, half an emoji),
and a NUL. Neither can always be stored: no database takes a lone surrogate (it is not encodable as UTF-8),
and PostgreSQL's text types refuse NUL. So the ledger stores such a text with a reversible escape:

- a stored text that starts with U+FDD0 (a Unicode noncharacter, never assigned) is escaped; anything else is
  stored exactly as it came;
- after that first U+FDD0, each NUL, each surrogate code point and each U+FDD0/U+FDD1 is written as U+FDD1
  followed by its code point in four upper-case hex digits (`\\x00` -> `\\ufdd1` `0000`); every other character is
  itself.

`storable` and `restored` are exact inverses for every string (the property tests check it), so what is read
back is what the provider sent. A task that builds on an upstream answer receives `well_formed(answer)`: lone
surrogates become U+FFFD, so the next provider is sent valid text and cannot fail on encoding it.
"""

from __future__ import annotations

import re

ESCAPED = "\ufdd0"  # first character of an escaped stored text
_ESC = "\ufdd1"  # introduces one escaped code point
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\ud800-\udfff]")
_UNSTORABLE_OR_NUL = re.compile("[\x00\ud800-\udfff]")
_TO_ESCAPE = re.compile("[\x00\ud800-\udfff\ufdd0\ufdd1]")
_ESCAPE_SEQUENCE = re.compile(_ESC + "([0-9A-F]{4})")
# Characters a name must not contain: C0 and C1 controls (NUL, ESC, ...), DEL, lone surrogates, and the bidi
# controls that make text display in another order than it reads ("Trojan Source").
_NOT_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def storable(text: str, *, nul_ok: bool = True) -> str:
    """`text` as the ledger stores it: itself when the database can hold it (no lone surrogate, no NUL unless
    `nul_ok`, and not starting with the escape mark), else its escaped form."""
    if text.isascii():  # the common case: only a NUL can be in the way
        if nul_ok or "\x00" not in text:
            return text
    elif not text.startswith(ESCAPED) and (_UNSTORABLE if nul_ok else _UNSTORABLE_OR_NUL).search(text) is None:
        return text
    return ESCAPED + _TO_ESCAPE.sub(lambda m: f"{_ESC}{ord(m.group()):04X}", text)


def restored(stored: str) -> str:
    """The text `storable` was given."""
    if not stored.startswith(ESCAPED):
        return stored
    return _ESCAPE_SEQUENCE.sub(lambda m: chr(int(m.group(1), 16)), stored[1:])


def restored_or_none(stored: str | None) -> str | None:
    return None if stored is None else restored(stored)


def well_formed(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (a surrogate pair given as two code points becomes
    the character it encodes): what a task receives of an upstream answer, and what can be encoded as UTF-8."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def name_problem(value: str) -> str | None:
    """Why `value` cannot be a name (an id, a type, a team, a provider), or None: it holds a control character."""
    found = _NOT_IN_NAMES.search(value)
    if found is None:
        return None
    return f"must not contain control characters (U+{ord(found.group()):04X} at position {found.start()})"


__all__ = ["ESCAPED", "name_problem", "restored", "restored_or_none", "storable", "well_formed"]
