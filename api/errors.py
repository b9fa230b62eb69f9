"""Errors in the shapes the OpenAPI document promises: a 422 of ours looks like FastAPI's own (a list of problems,
each with `loc`, `msg` and `type`), so a client reads every 422 one way."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import HTTPException


def unprocessable(messages: str | Sequence[str], *where: str | int) -> HTTPException:
    """A 422 listing `messages`, each located at `where` (e.g. "body", "settings")."""
    items = [messages] if isinstance(messages, str) else list(messages)
    loc = list(where) or ["body"]
    return HTTPException(422, [{"loc": loc, "msg": message, "type": "value_error"} for message in items])


__all__ = ["unprocessable"]
