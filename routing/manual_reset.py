"""A provider's limits reset by hand (`switchboard providers reset NAME [--subscription S]`), for every process.

shared store   its blocks and window usage cleared (calls in flight keep their reservations), its circuit
               closed (the whole provider only)
provider_events  one `provider.reset` row naming who and why: every routing process applies it within its
               refresh (routing.shared_sync), and a process started later does not restore what came before
               it (routing.restore)
"""

from __future__ import annotations

from ledger import RESET_EVENT, Ledger, LimitStore
from routing.shared_asks import provider_scope, subscription_scope


def reset_provider(
    ledger: Ledger,
    provider_id: str,
    *,
    subscription: str | None,
    subscriptions: tuple[str, ...],
    by: str,
    reason: str | None,
) -> None:
    """Clear the provider's (or one subscription's) blocks, windows and circuit in the shared store; record it."""
    if subscription is not None:
        scopes = [subscription_scope(provider_id, subscription)]
    else:
        scopes = [provider_scope(provider_id), *(subscription_scope(provider_id, s) for s in subscriptions)]
    LimitStore(ledger.engine, owner=by).reset(scopes, None if subscription else provider_id)
    ledger.record_provider_event(provider_id, RESET_EVENT, {"by": by, "reason": reason}, subscription=subscription)


__all__ = ["reset_provider"]
