"""The budgets' hold on a request sent to a vendor batch, from its submission until its answer.

A request may wait for hours, and the vendor charges it when it answers, so the budgets count it from the start:
its estimate at the batch price is counted as spent in this process (`BudgetGuard.charge`) and held in the
shared store as a reservation of its own (`SharedLimits.hold`, budgets only, living as long as the vendor's
window) until the answer replaces it with what was charged. Work that never went to the vendor, or came back
unanswered (expired, cancelled, taken back for a live call), gives it all back. A process that dies with requests
in a vendor batch leaves their reservations to expire, charged at their estimates: the vendor charges them too.
A resumed run finds its tasks waiting already and does not hold them again (the earlier start's reservations
still count them); their answers count in this process only when they come.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ledger import Reservation
from providers import AIProvider, AITask
from routing.admission import Admitter
from routing.budget import BudgetGuard
from routing.deferral import Deferral
from routing.shared import SharedLimits
from routing.shared_asks import SharedAsks


@dataclass(frozen=True, slots=True)
class BatchHold:
    """What the budgets hold for one request: its estimate counted here, and the store's reservation if any."""

    estimate: float
    reservation: Reservation | None = None


class BatchBudget:
    """Loop-confined, like the budget guard it charges."""

    def __init__(
        self, budget: BudgetGuard, admitter: Admitter, shared: SharedLimits | None, asks: SharedAsks | None
    ) -> None:
        self._budget, self._admitter, self._shared, self._asks = budget, admitter, shared, asks

    async def hold(
        self,
        deferral: Deferral,
        provider: AIProvider,
        task: AITask,
        *,
        run_id: str,
        team: str | None,
        live_estimate: float,
    ) -> BatchHold | None:
        """Hold the request's estimate in every budget, or None when one of them has no room for it (the task
        then takes the live path, which waits for room or says which budget refused)."""
        if deferral.resumes(provider, task):
            return BatchHold(0.0)
        terms = deferral.terms(provider)
        estimate = live_estimate * (1 - terms.discount)
        budget = self._budget
        if budget.active:
            if budget.refusal(run_id, estimate) is not None:
                return None
            budget.charge(run_id, estimate)
        if self._shared is None or self._asks is None:
            return BatchHold(estimate)
        ask = self._asks.budget_ask(run_id=run_id, team=team, cost=estimate, ttl_s=terms.longest_wait_s)
        if ask is None:
            return BatchHold(estimate)
        try:
            answer = await self._shared.hold(ask)  # cancelled: a hold granted meanwhile goes back (routing.shared)
        except asyncio.CancelledError:
            self._give_back(run_id, estimate)
            raise
        if not isinstance(answer, Reservation):
            self._give_back(run_id, estimate)
            return None
        return BatchHold(estimate, answer)

    def settle(self, hold: BatchHold, *, run_id: str, charged: float) -> None:
        """The request ended: what it was `charged` (0 if it went unanswered or never reached the vendor)
        replaces its estimate in every budget."""
        if self._budget.active:
            self._budget.charge(run_id, charged - hold.estimate)
            self._admitter.budget_settled()
        if hold.reservation is not None and self._shared is not None:
            self._shared.settle_hold(hold.reservation, requests=1 if charged else 0, tokens=0, cost=charged)

    def _give_back(self, run_id: str, estimate: float) -> None:
        if self._budget.active:
            self._budget.charge(run_id, -estimate)
            self._admitter.budget_settled()


__all__ = ["BatchBudget", "BatchHold"]
