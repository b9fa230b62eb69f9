"""Routing's memory across processes: what a new router starts from, rebuilt from the ledger.

    quota windows    the last day's attempts, per provider and subscription (cancelled ones left out)
    quota blocks     `quota.blocked` events whose reset is still ahead, unless a `quota.reset` came after
    circuits         each provider's last calls within `CIRCUIT_MEMORY`: closed after a success, open for the
                     rest of the cooldown after `failure_threshold` failures, else unknown
    budgets          what this run and today (UTC) already spent, and the exhaustions already reported
    adaptive scores  `HISTORY_DAYS` of attempts per provider and task type (only when asked: it is a scan)

The other half of the memory is `ledger_observer`: the state changes a router reports, recorded as
`provider_events` for the next one. Everything goes through the router's public methods and the ledger's
typed records; windows are bulk-loaded (one sort per window), so a day of attempts takes milliseconds.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import ValidationError

from ledger import RESET_EVENT, Ledger, ProviderEventRecord
from providers import utc_now
from routing.attempts import HEALTH_FAILURES
from routing.events import (
    BUDGET_EXHAUSTED,
    FAILOVER,
    QUOTA_BLOCKED,
    QUOTA_RESET,
    BudgetExhaustedDetail,
    QuotaBlockedDetail,
    RoutingEvent,
    RoutingObserver,
    plain_detail,
)
from routing.quota import PastCall
from routing.router import Router

# How far back the adaptive strategy's scores look.
HISTORY_DAYS = 7
# How long a provider's last calls still say whether it is up (its circuit's starting state in a new run).
CIRCUIT_MEMORY = timedelta(minutes=10)
# How far back quota windows reach (the longest window is a day) and quota blocks are looked for.
USAGE_MEMORY = timedelta(days=1)
BLOCK_MEMORY = timedelta(days=31)
# provider_events.provider_id is required; events about the whole run (budget) are stored under this id.
NO_PROVIDER = "*"
_D = TypeVar("_D", QuotaBlockedDetail, BudgetExhaustedDetail)

log = logging.getLogger(__name__)


def restore_router_state(router: Router, ledger: Ledger, run_id: str, *, scores: bool = True) -> None:
    """Start `router` (about to route run `run_id`) from what the ledger remembers; see the module docstring.
    The adaptive strategy's scores are loaded only with `scores`."""
    now = utc_now()
    known = set(router.provider_ids())
    block_events = ledger.events_since(now - BLOCK_MEMORY, [QUOTA_BLOCKED, QUOTA_RESET, RESET_EVENT])
    resets = _last_resets(block_events)
    _restore_usage(router, ledger, now, resets)
    _restore_circuits(router, ledger, known, now, resets)
    _restore_quota_blocks(router, block_events, known)
    if router.budget.active:
        _restore_budgets(router, ledger, run_id, now)
    if scores:
        router.refresh_history(ledger.history(now - timedelta(days=HISTORY_DAYS)))


def _last_resets(events: list[ProviderEventRecord]) -> dict[tuple[str, str | None], datetime]:
    """When each provider (subscription None) or subscription was last reset by hand."""
    return {(e.provider_id, e.subscription): e.at for e in events if e.kind == RESET_EVENT}


def _before_reset(
    resets: dict[tuple[str, str | None], datetime], provider_id: str, subscription: str | None, at: datetime
) -> bool:
    """Whether a call at `at` came before a reset by hand that cleared it (its provider's, or its subscription's)."""
    whole = resets.get((provider_id, None))
    own = resets.get((provider_id, subscription)) if subscription else None
    return (whole is not None and at <= whole) or (own is not None and at <= own)


def _restore_usage(
    router: Router, ledger: Ledger, now: datetime, resets: dict[tuple[str, str | None], datetime]
) -> None:
    limited = router.providers_with_limits()
    if not limited:
        return
    calls: dict[str, list[PastCall]] = defaultdict(list)
    for point in ledger.usage_since(now - USAGE_MEMORY, limited):
        if resets and _before_reset(resets, point.provider_id, point.subscription, point.started_at):
            continue
        calls[point.provider_id].append(
            ((now - point.started_at).total_seconds(), point.tokens, point.cost_usd, point.subscription)
        )
    for provider_id, past in calls.items():
        router.restore_usage(provider_id, past)


def _restore_circuits(
    router: Router, ledger: Ledger, known: set[str], now: datetime, resets: dict[tuple[str, str | None], datetime]
) -> None:
    remembered = ledger.recent_outcomes(
        now - CIRCUIT_MEMORY,
        known,
        {"success", *HEALTH_FAILURES},
        per_provider=router.config.circuit.failure_threshold,
    )
    for provider_id, outcomes in remembered.items():
        reset_at = resets.get((provider_id, None))
        if reset_at is not None:  # closed by hand: what came before does not count
            outcomes = [(outcome, at) for outcome, at in outcomes if at > reset_at]
        router.restore_circuit(
            provider_id, [(outcome != "success", (now - at).total_seconds()) for outcome, at in outcomes]
        )


def _restore_quota_blocks(router: Router, events: list[ProviderEventRecord], known: set[str]) -> None:
    for event in events:  # oldest first: a reset clears the block before it
        if event.provider_id not in known:
            continue
        if event.kind == QUOTA_RESET:
            router.clear_quota_block(event.provider_id, event.subscription)
            continue
        if event.kind == RESET_EVENT:  # by hand: the subscription's block, or the provider's and all of its own
            subscriptions = (
                [event.subscription] if event.subscription else [None, *router.subscriptions(event.provider_id)]
            )
            for subscription in subscriptions:
                router.clear_quota_block(event.provider_id, subscription)
            continue
        detail = _read(QuotaBlockedDetail, event)
        if detail is not None and detail.reset_at is not None:
            router.restore_quota_block(event.provider_id, detail.reset_at, detail.reason, event.subscription)


def _restore_budgets(router: Router, ledger: Ledger, run_id: str, now: datetime) -> None:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    router.seed_budget(run_id, run_spent=ledger.run_cost(run_id), day_spent=ledger.cost_since(midnight))
    # An exhaustion already reported (today's day budget, or this run's before a restart) is not reported again.
    for event in ledger.events_since(midnight, [BUDGET_EXHAUSTED]):
        detail = _read(BudgetExhaustedDetail, event)
        if detail is None:
            continue
        if detail.scope == "day":
            router.budget_reported("day", detail.day or midnight.date().isoformat())
        elif detail.scope == "run" and detail.run_id == run_id:
            router.budget_reported("run", run_id)


def _read(model: type[_D], event: ProviderEventRecord) -> _D | None:
    """The event's detail as `model`; None (and a warning) for a row this version cannot read."""
    try:
        return model.model_validate(event.detail or {})
    except ValidationError:
        log.warning("ignoring a %s event of %s with an unreadable detail", event.kind, event.provider_id)
        return None


def record_event(ledger: Ledger, event: RoutingEvent) -> None:
    """Store a routing event in `provider_events` (raises what the database raises)."""
    ledger.record_provider_event(
        event.provider_id or NO_PROVIDER,
        event.kind,
        plain_detail(event.detail),
        subscription=event.subscription,
        at=event.at,  # when it happened: a forwarding thread may record it later
    )


def ledger_observer(ledger: Ledger) -> RoutingObserver:
    """An observer recording the router's state changes in `provider_events`, for the next router to restore
    (flows' Prefect event forwarder records them the same way, beside the Prefect events)."""

    def observe(event: RoutingEvent) -> None:
        if event.kind == FAILOVER:
            return  # failovers are already visible as attempts; keep provider_events to state changes
        try:
            record_event(ledger, event)
        except Exception:  # never let bookkeeping break routing
            log.exception("could not record routing event %s", event.kind)

    return observe


__all__ = ["CIRCUIT_MEMORY", "HISTORY_DAYS", "NO_PROVIDER", "ledger_observer", "record_event", "restore_router_state"]
