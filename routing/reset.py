"""A provider reset by hand (`POST /api/v1/providers/{id}/reset`; the one function for `switchboard providers
reset` too): its circuit closed and its quota blocks, cool-offs and window usage cleared, in every routing process.

The shared limits store forgets the provider's blocks, usage and open circuit, and a `provider.reset` event in the
ledger tells every router (routing.shared_sync applies it on its next look, within a second or so) to clear its
own view; the router of the process asking is cleared at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger import RESET_EVENT, Ledger, LimitStore
from routing.router import Router
from routing.shared_asks import provider_scope, subscription_scope


def describe_trouble(router: Router, provider_id: str, subscription: str | None = None) -> list[str]:
    """What a reset would clear in `router`: `circuit: open`, `<scope>: <block reason>`, `<scope>: cooling off`.
    Run on the engine loop."""
    st = router.state(provider_id)
    now = router.now()
    found = [] if subscription is not None or str(st.breaker.state) == "closed" else [f"circuit: {st.breaker.state}"]
    for scope in st.quota.scopes():
        if subscription is not None and scope.subscription != subscription:
            continue
        name = scope.subscription or "provider"
        if scope.blocked(now):
            found.append(f"{name}: {scope.blocked_reason}")
        if scope.cooloff_until is not None and now < scope.cooloff_until:
            found.append(f"{name}: cooling off")
    return found


def reset_here(router: Router, provider_id: str, subscription: str | None = None) -> None:
    """Clear the provider (or one subscription) in `router` now; run on the engine loop."""
    router.state(provider_id).reset(subscription)


def reset_everywhere(
    ledger: Ledger,
    owner: str,
    provider_id: str,
    subscriptions: Sequence[str],
    subscription: str | None = None,
    *,
    by: str | None = None,
    reason: str | None = None,
) -> None:
    """Clear the provider (or one subscription) in the shared store and tell every router to clear its view.
    `subscriptions`: the provider's subscription names (each has a scope of its own in the store). Recorded in
    provider_events with who (`by`, else the process `owner`) and why."""
    if subscription is not None:
        scopes = [subscription_scope(provider_id, subscription)]
    else:
        scopes = [provider_scope(provider_id), *(subscription_scope(provider_id, s) for s in subscriptions)]
    LimitStore(ledger.engine, owner=owner).reset(scopes, None if subscription else provider_id)
    detail = {"by_hand": True, "by": by or owner, "reason": reason}
    ledger.record_provider_event(provider_id, RESET_EVENT, detail, subscription=subscription)


__all__ = ["describe_trouble", "reset_everywhere", "reset_here"]
