"""Whether each subscription's login or key is accepted (`switchboard providers --check`), as typed verdicts.

The CLI has no way to ask the API whether a credential is good without sending a request, so a check goes in
two steps, and stops at the first that answers:

1. without any request: an API-key subscription whose variable is unset is `missing_key`; `claude auth
   status --json` (local only) says whether a config dir holds a login at all: `not_logged_in` if not;
2. one minimal request (a one-word prompt, a one-line system prompt, no tools: about a hundred input
   tokens), stopped at the first `api_retry` line: `accepted`, `refused` (401/403), `limited` (its usage limit,
   with the reset), `rate_limited`, or `unknown` (the API failed otherwise, so the credential could not be told).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from providers.claude_cli_pool import SubscriptionKind
from providers.errors import AuthenticationFailed, ProviderError, QuotaExhausted, RateLimited

Verdict = Literal["accepted", "refused", "limited", "rate_limited", "not_logged_in", "missing_key", "unknown"]
# The minimal request: the CLI's own system prompt and tools replaced, so it costs next to nothing.
PROBE_ARGS = ("--system-prompt", "Reply with OK.", "--tools", "")
PROBE_PROMPT = "ping"


class SubscriptionCheck(BaseModel):
    """One subscription's verdict. Holds no secret values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: SubscriptionKind
    verdict: Verdict
    # Whether a request was sent to the API to learn it (step 2), or the verdict came without one.
    asked_api: bool
    detail: str = ""
    reset_at: datetime | None = None

    @property
    def accepted(self) -> bool:
        return self.verdict in ("accepted", "limited", "rate_limited")


def logged_in(status_stdout: str) -> bool | None:
    """`claude auth status --json`'s `loggedIn`, or None when the output is not that (an older CLI)."""
    try:
        status = json.loads(status_stdout)
    except json.JSONDecodeError:
        return None
    value = status.get("loggedIn") if isinstance(status, dict) else None
    return value if isinstance(value, bool) else None


def verdict_for(error: ProviderError | None) -> tuple[Verdict, datetime | None]:
    """The verdict a probe's outcome stands for: None is an answer, so the credential was accepted."""
    if error is None:
        return "accepted", None
    if isinstance(error, AuthenticationFailed):
        return "refused", None
    if isinstance(error, QuotaExhausted):
        return "limited", error.reset_at
    if isinstance(error, RateLimited):
        return "rate_limited", error.reset_at
    return "unknown", None
