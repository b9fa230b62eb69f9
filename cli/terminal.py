"""Text for the terminal: nothing a model or a user wrote can replay a control sequence there.

Model output, error texts and names may hold escape sequences (set the window title, clear the screen, forge a
hyperlink), carriage returns that overwrite a line, bidi controls that reorder what is shown, or lone surrogates
that cannot be encoded. Each such character is shown escaped, as Python writes it (`\\x1b`, `\\r`, `\\u202e`,
`\\ud83d`), so the reader sees that it is there; newlines and tabs are kept. `--json` output needs none of this:
JSON escapes control characters itself.
"""

from __future__ import annotations

import re

from rich.text import Text

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SHORT = {"\r": "\\r", "\x0b": "\\v", "\x0c": "\\f", "\x08": "\\b", "\x07": "\\a", "\x1b": "\\x1b"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def for_terminal(text: str) -> str:
    """`text` with every control character (but newline and tab), bidi control and lone surrogate escaped."""
    if text.isprintable() or _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escaped, text)


def shown(text: str, style: str = "") -> Text:
    """`text` as a rich Text, escaped for the terminal and never read as markup."""
    return Text(for_terminal(text), style=style)


__all__ = ["for_terminal", "shown"]
