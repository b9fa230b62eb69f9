"""One attempt as the ledger records it, and what its outcome tells routing.

Outcomes that say something about the provider's health open its circuit; the caller's own faults say
nothing about how well a provider serves a task type, so they touch neither the circuit nor the adaptive
scores (see stats.py). Errors a provider raises that are not `ProviderError`s (a plugin's bug) are mapped
here, once, to the outage they amount to.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from ledger import AttemptRecord
from providers import AIProvider, MalformedResponse, ProviderError, ProviderResponse, TokenUsage, Unavailable

log = logging.getLogger(__name__)

# Errors that say something about the provider's health; the others (quota, rate limits, the caller's own
# mistakes, cancellations) must not open its circuit.
HEALTH_FAILURES = frozenset({"unavailable", "timeout", "overloaded", "malformed_response", "authentication"})


def attempt_record(
    record: dict[str, Any],
    latency_ms: float,
    *,
    finished_at: datetime,
    outcome: str,
    error: ProviderError | None = None,
    response: ProviderResponse | None = None,
) -> AttemptRecord:
    """The ledger row of a finished call; `record` holds what was known when it started, `latency_ms` how long it
    took on the engine's clock, `finished_at` when it ended on the engine's wall clock."""
    return AttemptRecord(
        **record,
        finished_at=finished_at,
        outcome=outcome,
        error_type=error.error_type if error else None,
        error_message=str(error)[:500] if error else None,
        subscription=(response.subscription if response else error.subscription if error else None),
        model=response.model if response else error.model if error else None,
        usage=(response.usage if response else error.usage if error and error.usage else TokenUsage()),
        cost_usd=response.cost_usd if response else error.cost_usd if error else 0.0,
        list_price_usd=response.list_price_usd if response else getattr(error, "list_price_usd", None),
        latency_ms=latency_ms,
        output=response.text if response else None,
    )


def internal_error(provider: AIProvider, exc: Exception) -> ProviderError:
    """A non-ProviderError from a provider, as the outage it amounts to (error_type `internal:<class>`)."""
    name = type(exc).__name__
    log.warning("provider %s raised %s; recorded as unavailable", provider.provider_id, name, exc_info=exc)
    error = Unavailable(f"{name}: {exc}"[:300], provider_id=provider.provider_id, error_type=f"internal:{name}")
    error.__cause__ = exc
    return error


def not_a_response(provider: AIProvider, answer: object) -> ProviderError:
    """A provider that returned something other than a ProviderResponse."""
    return MalformedResponse(
        f"execute_task returned {type(answer).__name__}, not a ProviderResponse",
        provider_id=provider.provider_id,
        error_type="not_a_response",
    )
