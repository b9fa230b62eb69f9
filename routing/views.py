"""Live state of each provider as a router holds it, as typed snapshots: circuit, health, latency, error rate,
calls in flight, quota windows per subscription with their forecast exhaustion, blocks and cool-offs.

What the HTTP API's health routes, its WebSocket feed and the provider board show. The state is loop-confined
(routing.loop): take snapshots on the engine loop (`await provider_views(router)` there, or
`engine_loop().run(provider_views(router))` from another thread).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from providers import utc_now
from routing.provider_state import ProviderState
from routing.quota_scope import QuotaScope
from routing.router import Router


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class LimitView(_View):
    """One configured limit of a scope: how much of its window is used, and when it runs out at the recent rate."""

    name: str  # e.g. requests_per_hour
    used: float
    limit: float
    utilization: float  # 0..1 (may pass 1 after an over-limit top-up)
    exhausted_in_s: float | None = None  # None: not at the recent rate
    exhausted_at: datetime | None = None


class QuotaScopeView(_View):
    """The provider as a whole (`subscription` None) or one of its subscriptions."""

    subscription: str | None = None
    limits: list[LimitView] = []
    # Utilisation the provider reported per window family (rate-limit headers, CLI events), until its reset.
    reported: dict[str, float] = {}
    blocked_until: datetime | None = None
    blocked_reason: str | None = None
    cooling_off_s: float | None = None
    pressure: float = 0.0


class CircuitView(_View):
    state: str  # unknown | closed | open | half_open
    open_for_s: float | None = None  # seconds until an open circuit lets a probe through
    error_rate: float | None = None  # failed fraction of the breaker's recent window


class HealthStateView(_View):
    status: str  # healthy | degraded | unhealthy | unknown
    detail: str = ""
    checked_s_ago: float | None = None


class ProviderLiveView(_View):
    id: str
    type: str
    priority: int
    available: bool
    circuit: CircuitView
    health: HealthStateView
    latency_ms: float | None = None  # the recent latency (EWMA over task types)
    in_flight: int = 0
    waiting: int = 0
    max_concurrency: int
    quota: list[QuotaScopeView]
    forecast: LimitView | None = None  # the limit the provider runs out of first at the recent rate, if any
    pressure: float = 0.0


def _scope_view(scope: QuotaScope, now: float, wall: datetime) -> QuotaScopeView:
    usage = scope.tracker.usage() if scope.specs else {}
    forecasts = scope.tracker.forecast_exhaustion() if scope.specs else {}
    limits = []
    for name, (used, limit) in usage.items():
        seconds = forecasts.get(name)
        limits.append(
            LimitView(
                name=name,
                used=used,
                limit=limit,
                utilization=round(used / limit, 6) if limit else 0.0,
                exhausted_in_s=None if seconds is None else round(seconds, 1),
                exhausted_at=None if seconds is None else wall + timedelta(seconds=seconds),
            )
        )
    blocked = scope.blocked(now)
    cooling = scope.cooloff_until is not None and now < scope.cooloff_until
    return QuotaScopeView(
        subscription=scope.subscription,
        limits=limits,
        reported={kind: round(u, 6) for kind, (u, until) in scope.signals.items() if now < until},
        blocked_until=wall + timedelta(seconds=scope.blocked_until - now) if blocked and scope.blocked_until else None,
        blocked_reason=scope.blocked_reason if blocked else None,
        cooling_off_s=round(scope.cooloff_until - now, 1) if cooling and scope.cooloff_until else None,
        pressure=round(scope.pressure(now), 6),
    )


def provider_view(router: Router, st: ProviderState) -> ProviderLiveView:
    """One provider's live state; call on the engine loop."""
    now, wall = router.now(), utc_now()
    provider, breaker = st.provider, st.breaker
    open_until = breaker.open_until
    soonest = st.quota.soonest_exhaustion()
    forecast = None
    if soonest is not None:
        name, seconds = soonest
        forecast = next(
            (lv for s in st.quota.scopes() for lv in _scope_view(s, now, wall).limits if lv.name == name),
            None,
        )
        if forecast is not None:
            forecast = forecast.model_copy(
                update={"exhausted_in_s": round(seconds, 1), "exhausted_at": wall + timedelta(seconds=seconds)}
            )
    scopes = [_scope_view(s, now, wall) for s in st.quota.scopes()]
    checked = st.health.checked_at
    return ProviderLiveView(
        id=provider.provider_id,
        type=provider.type_name,
        priority=st.priority,
        available=st.available,
        circuit=CircuitView(
            state=str(breaker.state),
            open_for_s=None if open_until is None else round(max(open_until - now, 0.0), 1),
            error_rate=None if breaker.error_rate is None else round(breaker.error_rate, 4),
        ),
        health=HealthStateView(
            status=str(st.health.status),
            detail=st.health.detail,
            # Health checks keep time on the process's monotonic clock, not the router's.
            checked_s_ago=None if checked is None else round(max(time.monotonic() - checked, 0.0), 1),
        ),
        latency_ms=router.latency.provider(provider.provider_id),
        in_flight=st.gate.in_use,
        waiting=st.gate.waiting,
        max_concurrency=st.gate.limit,
        quota=[s for s in scopes if s.subscription is not None or s.limits or s.blocked_until or s.reported]
        or scopes[:1],
        forecast=forecast,
        pressure=round(st.quota.pressure(), 6),
    )


async def provider_views(router: Router) -> list[ProviderLiveView]:
    """Every provider's live state, in the router's order; await it on the engine loop."""
    return [provider_view(router, router.state(pid)) for pid in router.provider_ids()]


__all__ = [
    "CircuitView",
    "HealthStateView",
    "LimitView",
    "ProviderLiveView",
    "QuotaScopeView",
    "provider_view",
    "provider_views",
]
