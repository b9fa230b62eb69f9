"""Scrubbing secret values out of text we quote (vendor error bodies, CLI output) and shortening it safely.

Order matters: redact the whole text first, then shorten. Shortening first can cut a key in two, and the half
that survives no longer matches the key, so it would be stored as is.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

# Shorter values are not treated as secrets: replacing them would mangle ordinary text.
MIN_SECRET_LEN = 8
# A piece of a secret at least this long at the very start or end of a text (someone else cut the text there)
# is still a leak of that many characters of the key.
MIN_FRAGMENT_LEN = 6
ELLIPSIS = "…"


def redact(text: str, secrets: Iterable[str | None], marker: str) -> str:
    """`text` with every occurrence of each secret, raw or URL-encoded (a key echoed inside a link), and any piece
    of one cut at either edge, replaced by `marker`."""
    values = sorted(
        {form for s in secrets if s and len(s) >= MIN_SECRET_LEN for form in (s, quote(s, safe=""), quote_plus(s))},
        key=len,
        reverse=True,
    )
    for value in values:  # longest first, so a key containing another goes whole
        text = text.replace(value, marker)
    for value in values:
        text = _redact_cut_edges(text, value, marker)
    return text


def _redact_cut_edges(text: str, secret: str, marker: str) -> str:
    # The longest head of the secret that ends the text, and the longest tail that starts it.
    for size in range(len(secret) - 1, MIN_FRAGMENT_LEN - 1, -1):
        if text.endswith(secret[:size]):
            text = text[:-size] + marker
            break
    for size in range(len(secret) - 1, MIN_FRAGMENT_LEN - 1, -1):
        if text.startswith(secret[-size:]):
            text = marker + text[size:]
            break
    return text


def shorten(text: str, limit: int) -> str:
    """The start of `text`, at most `limit` characters, ending in an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def tail(text: str, limit: int) -> str:
    """The end of `text`, at most `limit` characters, starting with an ellipsis when something was cut."""
    return text if len(text) <= limit else ELLIPSIS + text[-(limit - 1) :]


def url_credentials(url: str | None) -> list[str]:
    """The user name and password written into a URL (`https://user:token@host/`), decoded; they are secrets."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    return [unquote(v) for v in (parts.username, parts.password) if v]


def safe_url(url: str | None) -> str | None:
    """The URL without user info or query, either of which can carry a credential."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
