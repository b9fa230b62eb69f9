"""Which attempt outcomes count for or against a provider, in reports and what-if replays alike.

An attempt that ends `cancelled` (the caller stopped it), `bad_request` (the caller's request was wrong) or
`budget_exceeded` (the router's own budget said no) tells nothing about the provider's health, so success
rates, error-rate alerts and drop recommendations leave it out; the report shows those attempts separately
(`not_provider_failures`). The set is the project's one definition, `providers.errors.NOT_ABOUT_THE_PROVIDER`,
which routing's live scores use too. Every other outcome is the provider's: `success`, or a provider failure
(including `rate_limited` and `quota_exhausted`, which say the provider had no room).
"""

from __future__ import annotations

from providers import NOT_ABOUT_THE_PROVIDER

SUCCESS = "success"
NOT_PROVIDER_FAILURES: frozenset[str] = NOT_ABOUT_THE_PROVIDER
# Failures that say the provider had no room for the call, not that it is broken.
CAPACITY_OUTCOMES: tuple[str, ...] = ("rate_limited", "quota_exhausted")


def counts_for_provider(outcome: str) -> bool:
    """Whether an attempt with this outcome enters the provider's success rate (as a success or a failure)."""
    return outcome not in NOT_PROVIDER_FAILURES


def rate_or_none(numerator: int | float, denominator: int | float) -> float | None:
    """numerator / denominator, or None when there is nothing to divide by (an undefined rate is null)."""
    return numerator / denominator if denominator else None
