"""Domain events the routing engine reports (circuit, quota, budget, failover) and the observer interface.

The engine never imports Prefect: `flows/` supplies an observer that forwards these as Prefect events and
records them in the ledger's `provider_events` table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

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
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class RoutingObserver(Protocol):
    def __call__(self, event: RoutingEvent) -> None: ...
