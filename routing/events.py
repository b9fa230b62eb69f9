"""Domain events the routing engine reports (circuit, quota, budget, failover) and the observer interface.

The engine never imports Prefect: `flows/` supplies an observer that forwards these as Prefect events and
records them in the ledger's `provider_events` table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from providers import utc_now

# Event kinds; Prefect event names are "switchboard.<kind>" (e.g. switchboard.circuit.opened).
CIRCUIT_OPENED = "circuit.opened"
CIRCUIT_HALF_OPEN = "circuit.half_open"
CIRCUIT_CLOSED = "circuit.closed"
QUOTA_FORECAST_CROSSED = "quota.forecast_crossed"
QUOTA_BLOCKED = "quota.blocked"
QUOTA_RESET = "quota.reset"
BUDGET_EXHAUSTED = "budget.exhausted"
FAILOVER = "failover"


@dataclass(frozen=True, slots=True)
class RoutingEvent:
    kind: str
    provider_id: str | None = None
    subscription: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=utc_now)


class RoutingObserver(Protocol):
    def __call__(self, event: RoutingEvent) -> None: ...


# What the `detail` of the kinds read back from the ledger carries (routing.restore reads them). Keys a kind's
# producer adds beyond these (figures for people and automations) are left out of the reading.


class _Detail(BaseModel):
    model_config = ConfigDict(frozen=True)


class QuotaBlockedDetail(_Detail):
    """`quota.blocked`: why a provider (or subscription) is out, and until when (ISO 8601, UTC)."""

    reason: str = "quota"
    reset_at: datetime | None = None


class BudgetExhaustedDetail(_Detail):
    """`budget.exhausted`: which budget (`run` or `day`) refused work, for which run or UTC day."""

    scope: str
    run_id: str | None = None
    day: str | None = None


def plain_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """An event's detail as plain JSON values (event payloads and the ledger's JSON column take nothing else);
    anything else becomes its str()."""
    out: dict[str, Any] = {}
    for key, value in detail.items():
        if value is None or isinstance(value, str | int | float | bool):
            out[str(key)] = value
        elif isinstance(value, list | tuple):
            out[str(key)] = [v if isinstance(v, str | int | float | bool) or v is None else str(v) for v in value]
        elif isinstance(value, dict):
            out[str(key)] = plain_detail(value)
        else:
            out[str(key)] = str(value)
    return out
