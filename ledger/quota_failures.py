"""Which failed tasks failed for quota: one rule for the run summary, `show` and reports.

A task is a quota failure when its last attempt's outcome is `quota_exhausted` or `rate_limited`, or when it
made no attempt because every provider was skipped for a quota or rate-limit reason (routing then fails it
`quota_exhausted`, its error beginning with `QUOTA_REFUSED`). Budget refusals are not quota failures: they
are the team's own cap, counted as `budget_exceeded`.
"""

from __future__ import annotations

from collections.abc import Sequence

QUOTA_OUTCOMES = frozenset({"quota_exhausted", "rate_limited"})
# How a task's error begins when every provider was skipped for quota or rate limits.
QUOTA_REFUSED = "every provider is out of quota or rate limited now"


def is_quota_reason(reason: str) -> bool:
    """Whether a provider was skipped for its quota or a rate limit (routing's `quota: ...` and cool-off reasons)."""
    return reason.startswith(("quota:", "rate_limited"))


def is_quota_failure(status: str, outcomes: Sequence[str], error: str | None) -> bool:
    """Whether a task (its status, its attempts' outcomes in order, its error) failed for quota."""
    if status != "failed":
        return False
    if outcomes:
        return outcomes[-1] in QUOTA_OUTCOMES
    return bool(error) and error.startswith(QUOTA_REFUSED)  # type: ignore[union-attr]


__all__ = ["QUOTA_OUTCOMES", "QUOTA_REFUSED", "is_quota_failure", "is_quota_reason"]
