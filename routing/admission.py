"""Admission: right before each call (the first, a retry, a failover) take a slot on a provider, or say why not.

    while True:
        circuit open, unhealthy, removed, quota (incl. the critical reserve), budget spent  ->  skip, with why
        only budget reserved by calls in flight in the way                                 ->  wait for a settle
        a slot free (and, while the circuit is unknown or half-open, a probe slot)         ->  take it, go
        otherwise                                                                          ->  queue, by rank

A task whose only obstacles are busy slots waits; when a probe settles it goes (circuit closed) or moves on
(circuit open). The checks and the take happen with no await between them, on the engine's one loop, so no
call starts past a limit, an open circuit or the budget, however many tasks waited for the same slot.

With limits shared across processes (routing.shared), the slot taken, the call also reserves in the shared store
(awaited: the loop goes on meanwhile). Refused there, the slot is given back and the provider skipped with the
store's reason; refused by its subscription's shared limit, another subscription is tried; refused only because
other calls in flight hold money they may not spend, the task waits for them a while, as it does for this
process's own calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger import LimitRefusal, ReservationAsk
from providers import AITask
from routing.budget import BudgetGuard
from routing.circuit import CircuitState
from routing.decision import Refusal
from routing.provider_state import ProviderState
from routing.shared import LEASE_S, SharedLimits, Ticket
from routing.shared_asks import refused_subscription, shared_refusal

_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN
CIRCUIT_OPEN = "circuit_open"
# A probe may take its provider's timeout; the claim holds the shared circuit open a little longer than that.
PROBE_HOLD_MARGIN_S = 5.0
# A process whose claim was refused asks again this often (the prober may have closed the circuit meanwhile).
PROBE_RECHECK_S = 1.0
# A call refused only by money other processes' calls in flight hold looks again this often, for this long.
SHARED_RETRY_S = 0.05
SHARED_WAIT_S = 30.0
# A request slot held by calls in flight never comes back (each settles as one request), but one held by another
# process's lease spare does, within `LEASE_S` of the lease's end: a call refused on requests looks again this long.
SHARED_REQUEST_WAIT_S = 2 * LEASE_S + 0.25
# The ask for a call on a given subscription (None: the provider's choice), or None when nothing limits it.
AskFor = Callable[[str | None], ReservationAsk | None]


@dataclass(slots=True)
class Admission:
    """The outcome of waiting for a turn on one provider."""

    refusal: Refusal | None
    subscription: str | None = None  # the subscription the call must use; None = the provider's choice
    waited: bool = False
    reservation: Ticket | None = None  # held in the shared store; settled when the call ends


class Admitter:
    """Loop-confined: the engine's admissions and the tasks waiting for budget reservations to settle."""

    def __init__(self, budget: BudgetGuard, shared: SharedLimits | None = None) -> None:
        self.budget = budget
        self.shared = shared
        self._probe_elsewhere: dict[str, float] = {}  # provider id -> until when another process holds its probe
        self._budget_waiters: list[asyncio.Future[None]] = []

    async def admit(
        self,
        st: ProviderState,
        task: AITask,
        run_id: str,
        estimate: tuple[float, float],
        critical: bool,
        exclude_subscriptions: frozenset[str] | set[str] = frozenset(),
        ask_for: AskFor | None = None,
    ) -> Admission:
        """Wait for a turn on `st` and take a slot (circuit, quota and budget checked as the slot is taken),
        or say why this provider must be skipped. `exclude_subscriptions` (tried by this task) are not named.
        `ask_for`: what the call must fit in the shared store, if limits are shared."""
        gate, breaker, quota, budget = st.gate, st.breaker, st.quota, self.budget
        tokens, cost = estimate
        budget_on = budget.active
        ticket: int | None = None
        woken = waited = False
        shared = self.shared if ask_for is not None else None
        shared_deadline: float | None = None
        while True:
            reason: Refusal | None = provider_refusal(st) or self._probed_elsewhere(st)
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
                if budget_on:
                    budget.reserve(run_id, cost)
                if self.shared is not None and breaker.state is _HALF_OPEN:
                    elsewhere = await self._claim_probe(st, run_id, cost, budget_on)
                    if elsewhere is not None:  # another process probes it: as if it were open here too
                        self._give_back(st, run_id, cost, budget_on)
                        return Admission(elsewhere, waited=waited)
                reservation = None
                ask = ask_for(subscription) if ask_for is not None else None
                if shared is not None and ask is not None:
                    try:
                        answer = await shared.reserve(ask)
                    except asyncio.CancelledError:
                        # Stopped while asking: the call never goes out. A share of a lease granted meanwhile
                        # goes back to it (routing.shared), so nothing is counted for it.
                        self._give_back(st, run_id, cost, budget_on)
                        raise
                    if not isinstance(answer, Ticket):
                        self._give_back(st, run_id, cost, budget_on)
                        woken = False
                        if isinstance(answer, LimitRefusal):
                            sub = refused_subscription(answer, st.provider.provider_id)
                            if sub is not None:  # that subscription is out across processes: another may do
                                exclude_subscriptions = {*exclude_subscriptions, sub}
                                continue
                            if answer.held_by_reservations:
                                # Money held by calls in flight (here or elsewhere) that may settle lower, or
                                # request slots held by leases that may not use them: wait.
                                now = time.monotonic()
                                wait = SHARED_REQUEST_WAIT_S if answer.check.measure == "requests" else SHARED_WAIT_S
                                shared_deadline = shared_deadline or now + wait
                                if now < shared_deadline:
                                    await asyncio.sleep(SHARED_RETRY_S)
                                    waited = True
                                    continue
                            return Admission(shared_refusal(answer), waited=waited)
                        return Admission(str(answer), waited=waited)
                    reservation = answer
                quota.begin(subscription)
                return Admission(None, subscription, waited, reservation)
            # No slot (or probe slot) free yet: queue, keeping the place this task already had.
            ticket = await gate.wait(task.priority.rank, ticket)
            woken = waited = True

    async def _claim_probe(self, st: ProviderState, run_id: str, cost: float, budget_on: bool) -> str | None:
        """Claim the half-open circuit's probe for every process; None when this call may be it, else why not.
        A store that cannot answer does not stop the probe: this process's breaker still bounds its own."""
        assert self.shared is not None
        provider_id = st.provider.provider_id
        hold_s = (st.provider.config.timeout_s or 120.0) + PROBE_HOLD_MARGIN_S
        try:
            left = await self.shared.claim_probe(provider_id, hold_s)
        except asyncio.CancelledError:
            self._give_back(st, run_id, cost, budget_on)
            raise
        if isinstance(left, float) and left > 0:
            self._probe_elsewhere[provider_id] = time.monotonic() + min(left, PROBE_RECHECK_S)
            return CIRCUIT_OPEN
        return None

    def _probed_elsewhere(self, st: ProviderState) -> str | None:
        """`circuit_open` while another process holds the probe of a circuit half-open here (looked at again
        every `PROBE_RECHECK_S`)."""
        until = self._probe_elsewhere.get(st.provider.provider_id)
        if until is None:
            return None
        if time.monotonic() < until and st.breaker.state is _HALF_OPEN:
            return CIRCUIT_OPEN
        del self._probe_elsewhere[st.provider.provider_id]
        return None

    def _give_back(self, st: ProviderState, run_id: str, cost: float, budget_on: bool) -> None:
        """Undo a slot taken for a call the shared store refused: it never went out."""
        st.breaker.abandon()
        if budget_on:
            self.budget.settle(run_id, cost, 0.0)
            self.budget_settled()
        st.gate.leave()

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
        return CIRCUIT_OPEN
    return st.health.refusal()
