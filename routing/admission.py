"""Admission: right before each call (the first, a retry, a failover) take a slot on a provider, or say why not.

    while True:
        circuit open, unhealthy, removed, quota (incl. the critical reserve), budget spent  ->  skip, with why
        only budget reserved by calls in flight in the way                                 ->  wait for a settle
        a slot free (and, while the circuit is unknown or half-open, a probe slot)         ->  take it, go
        otherwise                                                                          ->  queue, by rank

A task whose only obstacles are busy slots waits; when a probe settles it goes (circuit closed) or moves on
(circuit open). The checks and the take happen with no await between them, on the engine's one loop, so no
call starts past a limit, an open circuit or the budget, however many tasks waited for the same slot.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from providers import AITask
from routing.budget import BudgetGuard
from routing.circuit import CircuitState
from routing.decision import Refusal
from routing.provider_state import ProviderState

_OPEN = CircuitState.OPEN


@dataclass(slots=True)
class Admission:
    """The outcome of waiting for a turn on one provider."""

    refusal: Refusal | None
    subscription: str | None = None  # the subscription the call must use; None = the provider's choice
    waited: bool = False


class Admitter:
    """Loop-confined: the engine's admissions and the tasks waiting for budget reservations to settle."""

    def __init__(self, budget: BudgetGuard) -> None:
        self.budget = budget
        self._budget_waiters: list[asyncio.Future[None]] = []

    async def admit(
        self,
        st: ProviderState,
        task: AITask,
        run_id: str,
        estimate: tuple[float, float],
        critical: bool,
        exclude_subscriptions: frozenset[str] | set[str] = frozenset(),
    ) -> Admission:
        """Wait for a turn on `st` and take a slot (circuit, quota and budget checked as the slot is taken),
        or say why this provider must be skipped. `exclude_subscriptions` (tried by this task) are not named."""
        gate, breaker, quota, budget = st.gate, st.breaker, st.quota, self.budget
        tokens, cost = estimate
        budget_on = budget.active
        ticket: int | None = None
        woken = waited = False
        while True:
            reason: Refusal | None = provider_refusal(st)
            subscription = None
            if reason is None:
                reason, subscription = quota.admission(
                    tokens, cost, critical=critical, affinity=task.affinity, exclude=exclude_subscriptions
                )
            if reason is None and budget_on:
                reason = budget.refusal(run_id, cost, reserved=False)
            if reason is not None:
                if woken:
                    gate.wake()  # this turn is not taken: pass it on
                return Admission(reason, waited=waited)
            if budget_on and budget.calls_in_flight and budget.refusal(run_id, cost) is not None:
                # Only estimates of calls in flight stand in the way; they settle, often lower. Wait for one.
                if woken:
                    gate.wake()
                await self._budget_settled()
                ticket, woken, waited = None, False, True
                continue
            if (woken or not gate.queued) and gate.has_room and breaker.admits():
                gate.enter()
                breaker.begin()
                quota.begin(subscription)
                if budget_on:
                    budget.reserve(run_id, cost)
                return Admission(None, subscription, waited)
            # No slot (or probe slot) free yet: queue, keeping the place this task already had.
            ticket = await gate.wait(task.priority.rank, ticket)
            woken = waited = True

    def budget_settled(self) -> None:
        """A call's reservation settled: tasks waiting on reservations look again."""
        waiters, self._budget_waiters = self._budget_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _budget_settled(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._budget_waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():
                self._budget_waiters.remove(waiter)


def provider_refusal(st: ProviderState) -> str | None:
    """Circuit and health: the provider-wide reasons to skip it now."""
    if st.removed:
        return "removed"
    if st.breaker.state is _OPEN:
        return "circuit_open"
    return st.health.refusal()
