"""Acting on the Claude CLI's own retries as they happen, so its retry loop never eats minutes of a batch.

When an API request fails, the real CLI (2.1.x) does not exit: it retries up to 10 times with growing delays
(or a 429's own retry-after) and prints one `api_retry` line per retry (PROVIDERS.md 1.3a). Each line is
judged the moment it arrives:

    the line says                                   verdict
    401 / 403 (authentication_failed)              stop at once: `authentication`, the subscription out until
                                                   its re-probe time (`auth_reprobe_s`) or a credential change
    429 asking to wait longer than retry_max_s     stop at once: `rate_limited` with that wait (the failover
                                                   settings' one short-retry threshold, passed by the router)
    anything else (529, 5xx, a short 429, none)    let the CLI retry while its announced delays add up to at
                                                   most `overload_retry_budget_s`; past that, stop:
                                                   `overloaded` (`rate_limited` for a 429, `unavailable` when
                                                   no connection could be made)

A stopped CLI's error names its subscription, so routing moves the task to the provider's next subscription
(authentication, a long rate limit) or retries or fails over as for any provider (overload).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from providers.claude_cli_parse import ApiRetry
from providers.errors import AuthenticationFailed, Overloaded, ProviderError, RateLimited, Unavailable

_AUTH_STATUSES = frozenset({401, 403})


class RetryWatch:
    """One CLI run's retries so far; `verdict` says whether the next one is allowed or the run must stop."""

    __slots__ = ("_budget_s", "_clock", "_provider_id", "_reprobe_s", "_retry_max_s", "_subscription", "spent_s")

    def __init__(
        self,
        *,
        provider_id: str,
        subscription: str,
        budget_s: float,
        retry_max_s: float | None,
        auth_reprobe_s: float,
        wall_clock: Callable[[], datetime],
    ) -> None:
        self._provider_id = provider_id
        self._subscription = subscription
        self._budget_s = budget_s
        # None (no router said): every 429 counts against the budget like an overload.
        self._retry_max_s = retry_max_s
        self._reprobe_s = auth_reprobe_s
        self._clock = wall_clock
        # Seconds of retry delay the CLI announced and was allowed to spend.
        self.spent_s = 0.0

    def verdict(self, retry: ApiRetry) -> ProviderError | None:
        """None to let the CLI make this retry; else the error to stop the run with."""
        kw = {"provider_id": self._provider_id, "subscription": self._subscription}
        said = f"{retry.status if retry.status is not None else 'no status'} ({retry.error})"
        where = f"stopped the CLI at its retry {retry.attempt}"
        if retry.status in _AUTH_STATUSES or retry.error == "authentication_failed":
            return AuthenticationFailed(
                f"the API refused this subscription's credential: {said}; {where}",
                error_type=str(retry.status or retry.error),
                retry_after_s=self._reprobe_s,
                reset_at=self._clock() + timedelta(seconds=self._reprobe_s),
                **kw,
            )
        rate_limited = retry.status == 429 or retry.error == "rate_limit"
        if rate_limited and self._retry_max_s is not None and retry.delay_s > self._retry_max_s:
            return RateLimited(
                f"rate limited: {said}, asked to wait {retry.delay_s:g}s (more than {self._retry_max_s:g}s); {where}",
                error_type="429",
                retry_after_s=retry.delay_s,
                reset_at=self._clock() + timedelta(seconds=retry.delay_s),
                **kw,
            )
        if self.spent_s + retry.delay_s <= self._budget_s:
            self.spent_s += retry.delay_s
            return None
        message = (
            f"the CLI's request failed with {said}; {where} after {self.spent_s:.1f}s of retries"
            f" (budget {self._budget_s:g}s)"
        )
        if rate_limited:
            return RateLimited(message, error_type="429", retry_after_s=retry.delay_s, **kw)
        if retry.status is None:
            return Unavailable(message, error_type="connection", **kw)
        return Overloaded(message, error_type=str(retry.status), **kw)
