"""The one error hierarchy every provider raises and every layer above understands.

    ProviderError                 outcome          retry same provider?      fail over?
    ├── RateLimited               rate_limited     if it names a wait        yes
    ├── QuotaExhausted            quota_exhausted  no (carries reset_at)     yes
    ├── Overloaded                overloaded       yes (with backoff)        yes
    ├── Unavailable               unavailable      no                        yes
    ├── ProviderTimeout           timeout          no                        yes
    ├── AuthenticationFailed      authentication   no                        yes
    ├── BadRequest                bad_request      no                        no
    ├── MalformedResponse         malformed_response no                      yes
    ├── BudgetExceeded            budget_exceeded  no                        no
    └── Cancelled                 cancelled        no                        no

How long a wait is worth spending on the same provider is routing's to decide (`routing.failover`
`FailoverSettings.retry_max_s`, the one short-retry threshold), not the error's: a rate limit says only how
long it asks for.

`outcome` is the shared vocabulary of DESIGN.md: the mock's `fail_with`, the ledger's `outcome` column and
the CLI's JSON all use it. `error_type` carries the finer detail (`insufficient_quota`, `usage_limit`,
an HTTP status, ...). Each provider maps its vendor's failures to these classes once, at its edge.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from providers.models import TokenUsage


class ProviderError(Exception):
    """Base class: a provider call that did not produce an answer."""

    outcome: ClassVar[str] = "unavailable"
    failover_helps: ClassVar[bool] = True
    _retry_helps: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        provider_id: str | None = None,
        error_type: str | None = None,
        retry_after_s: float | None = None,
        reset_at: datetime | None = None,
        subscription: str | None = None,
        usage: TokenUsage | None = None,
        cost_usd: float = 0.0,
        model: str | None = None,
        list_price_usd: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider_id = provider_id
        self.error_type = error_type
        self.retry_after_s = retry_after_s
        self.reset_at = reset_at
        self.subscription = subscription
        # A failed call can still cost money (e.g. a CLI run that hit max_turns after several turns).
        self.usage = usage
        self.cost_usd = cost_usd
        # As ProviderResponse.list_price_usd: the list price of what the call used, when it is not what it is charged.
        self.list_price_usd = list_price_usd
        self.model = model

    @property
    def retry_helps(self) -> bool:
        """Whether calling the same provider again (after `retry_after_s`) may succeed."""
        return self._retry_helps

    def __str__(self) -> str:
        where = f"[{self.provider_id}] " if self.provider_id else ""
        detail = f" ({self.error_type})" if self.error_type else ""
        return f"{where}{self.outcome}{detail}: {self.message}"


class RateLimited(ProviderError):
    outcome = "rate_limited"

    @property
    def retry_helps(self) -> bool:
        # Only a rate limit that says when to come back is worth waiting for; whether that wait is short enough
        # is the failover policy's call (its retry_max_s).
        return self.retry_after_s is not None


class QuotaExhausted(ProviderError):
    outcome = "quota_exhausted"


class Overloaded(ProviderError):
    outcome = "overloaded"
    _retry_helps = True


class Unavailable(ProviderError):
    outcome = "unavailable"


class ProviderTimeout(ProviderError):
    outcome = "timeout"


class AuthenticationFailed(ProviderError):
    outcome = "authentication"


class BadRequest(ProviderError):
    outcome = "bad_request"
    failover_helps = False


class MalformedResponse(ProviderError):
    outcome = "malformed_response"


class BudgetExceeded(ProviderError):
    outcome = "budget_exceeded"
    failover_helps = False


class Cancelled(ProviderError):
    outcome = "cancelled"
    failover_helps = False


ERRORS_BY_OUTCOME: dict[str, type[ProviderError]] = {
    cls.outcome: cls
    for cls in (
        RateLimited,
        QuotaExhausted,
        Overloaded,
        Unavailable,
        ProviderTimeout,
        AuthenticationFailed,
        BadRequest,
        MalformedResponse,
        BudgetExceeded,
        Cancelled,
    )
}
OUTCOMES: frozenset[str] = frozenset({"success", *ERRORS_BY_OUTCOME})
# Outcomes that say nothing about the provider: the caller's request was wrong, the router's budget said no,
# or the caller stopped the call. Success rates, adaptive scores, alerts and recommendations leave them out.
NOT_ABOUT_THE_PROVIDER: frozenset[str] = frozenset({"bad_request", "budget_exceeded", "cancelled"})
