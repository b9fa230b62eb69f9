"""Blocks, open circuits and resets by hand, between this router and every other routing process.

Out: a `quota.blocked` this router reports (a quota error, a long retry-after, a `rejected` signal) becomes a
shared block for its remaining time; a `circuit.opened` opens the provider's shared circuit for the cooldown; a
`circuit.closed` (this process's probe succeeded) closes the shared circuit it held open while probing (the
probe itself is claimed for every process in routing.admission).
In: every `refresh_s` (routing.shared) the blocks and open circuits of the store reach this router's own quota
and breakers, quietly (the process that saw them reported them), and resets by hand (`switchboard providers
reset`) clear this router's block, circuit and windows of that provider or subscription. Applied on the loop
that routes, so the engine's state stays loop-confined.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

from ledger import LimitStore, SharedState
from providers import utc_now
from routing.events import CIRCUIT_CLOSED, CIRCUIT_OPENED, QUOTA_BLOCKED, RoutingEvent, RoutingObserver
from routing.provider_state import ProviderState
from routing.shared import SharedLimits
from routing.shared_asks import provider_scope, subscription_scope


class SharedSync:
    """Owned by a router: `states` are its providers' states, `clock` its engine clock."""

    def __init__(
        self,
        shared: SharedLimits,
        *,
        states: Callable[[], dict[str, ProviderState]],
        clock: Callable[[], float],
        cooldown_s: float,
    ) -> None:
        self._shared = shared
        self._states = states
        self._clock = clock
        self._cooldown_s = cooldown_s
        self._loop: asyncio.AbstractEventLoop | None = None

    def observer(self, inner: RoutingObserver | None) -> RoutingObserver:
        """`inner`, after publishing the events other processes must act on."""

        def observe(event: RoutingEvent) -> None:
            if event.kind == QUOTA_BLOCKED and event.provider_id:
                self._publish_block(event)
            elif event.kind == CIRCUIT_OPENED and event.provider_id:
                seconds = self._cooldown_s
                provider_id = event.provider_id
                self._shared.publish(lambda store: store.set_circuit_open(provider_id, seconds))
            elif event.kind == CIRCUIT_CLOSED and event.provider_id:
                closed = event.provider_id
                self._shared.publish(lambda store: store.close_circuit(closed))
            if inner is not None:
                inner(event)

        return observe

    def ensure_started(self) -> None:
        """Start applying the shared state on the running loop (the one that routes)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._shared.watch(self._from_thread)

    def _publish_block(self, event: RoutingEvent) -> None:
        reset_at = event.detail.get("reset_at")
        try:
            seconds = (datetime.fromisoformat(str(reset_at)) - utc_now()).total_seconds()
        except ValueError:
            return
        if seconds <= 0:
            return
        scope = (
            subscription_scope(event.provider_id or "", event.subscription)
            if event.subscription
            else provider_scope(event.provider_id or "")
        )
        reason = str(event.detail.get("reason") or "blocked")
        write: Callable[[LimitStore], None] = lambda store: store.set_block(scope, seconds, reason)  # noqa: E731
        self._shared.publish(write)

    def _from_thread(self, state: SharedState) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self.apply, state)

    def apply(self, state: SharedState) -> None:
        """Bring the store's blocks, open circuits and resets into this router (on its loop)."""
        now, states = self._clock(), self._states()
        for provider_id, subscription in state.resets:
            st = states.get(provider_id)
            if st is not None:
                st.reset(subscription)
        for scope, (until, reason) in state.blocks.items():
            provider_id, subscription = _parse_scope(scope)
            st = states.get(provider_id) if provider_id else None
            if st is None:
                continue
            target = now + (until - state.now)
            local = st.quota.blocked_until_of(subscription)
            if local is None or local < target - 1.0:
                st.quota.block_until(target, reason, subscription)
                st.gate.wake_all()
        own = self._shared.store.owner
        for provider_id, open_until in state.circuits.items():
            if state.circuit_setters.get(provider_id) == own:
                continue  # opened (or held for its probe) by this process: its breaker knows
            st = states.get(provider_id)
            if st is not None:
                st.breaker.hold_open(open_until - state.now)
                st.gate.wake_all()


def _parse_scope(scope: str) -> tuple[str | None, str | None]:
    kind, _, rest = scope.partition(":")
    if kind == "provider":
        return rest, None
    if kind == "subscription":
        provider_id, _, subscription = rest.partition("/")
        return provider_id, subscription
    return None, None


__all__ = ["SharedSync"]
