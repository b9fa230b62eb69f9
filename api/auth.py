"""Bearer tokens and their scopes: `read` sees, `admin` also changes.

Tokens come from the providers file's `api.tokens` (each by the env var or Prefect Secret block holding it) and
from `SWITCHBOARD_API_TOKEN`, which alone gives one admin token named `admin`. A presented token is compared
with every known token in constant time (`hmac.compare_digest`, no early exit), so timing tells nothing about
which or how much of one matched. Tokens are never logged or returned; a principal is known by its name.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from providers import SecretResolver
from routing import ApiToken

TOKEN_ENV = "SWITCHBOARD_API_TOKEN"
Scope = Literal["read", "admin"]
_RANK = {"read": 0, "admin": 1}


@dataclass(frozen=True)
class Principal:
    name: str
    scope: Scope

    def allows(self, needed: Scope) -> bool:
        return _RANK[self.scope] >= _RANK[needed]


class TokenProblem(ValueError):
    """A configured token cannot be used (its variable is unset or empty)."""


class TokenSet:
    """The known tokens, kept as SHA-256 digests (equal length, so every comparison costs the same)."""

    def __init__(self, tokens: Iterable[tuple[str, Scope, str]]) -> None:
        self._known = [(hashlib.sha256(t.encode()).digest(), Principal(name, scope)) for name, scope, t in tokens]

    def __len__(self) -> int:
        return len(self._known)

    def identify(self, presented: str | None) -> Principal | None:
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode()).digest()
        found: Principal | None = None
        for known, principal in self._known:  # no early exit: every token is compared
            if hmac.compare_digest(digest, known) and found is None:
                found = principal
        return found

    @classmethod
    def from_settings(
        cls, configured: Iterable[ApiToken], secrets: SecretResolver, env: Callable[[str], str | None] = os.environ.get
    ) -> TokenSet:
        """Resolve `api.tokens` and `SWITCHBOARD_API_TOKEN`; TokenProblem names a token whose variable is unset."""
        tokens: list[tuple[str, Scope, str]] = []
        single = env(TOKEN_ENV)
        if single:
            tokens.append(("admin", "admin", single))
        problems = []
        for ref in configured:
            value = secrets(ref.token_env)
            if not value:
                problems.append(f"api.tokens ({ref.name}).token_env: {ref.token_env} is not set")
                continue
            tokens.append((ref.name, ref.scope, value))
        if problems:
            raise TokenProblem("; ".join(problems))
        return cls(tokens)


__all__ = ["TOKEN_ENV", "Principal", "Scope", "TokenProblem", "TokenSet"]
