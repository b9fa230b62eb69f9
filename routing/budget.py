"""Cost budgets per run and per UTC day: a task whose estimate would break one is not sent."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from providers import utc_now
from routing.config import Budget


def _today() -> date:
    return utc_now().date()


@dataclass(frozen=True, slots=True)
class BudgetRefusal:
    """A budget refused a call: which one (`run`, `day`, or a `team`'s day), what the total would have reached, and
    its cap. Printed (in a decision's `skipped`, in errors) as `budget: run would reach $0.0120 of $0.0100`, or
    `budget: team platform would reach ...`."""

    scope: Literal["run", "day", "team"]
    total: float
    cap: float
    team: str | None = None

    def __str__(self) -> str:
        which = f"team {self.team}" if self.scope == "team" else self.scope
        return f"budget: {which} would reach ${self.total:.4f} of ${self.cap:.4f}"


class BudgetGuard:
    """Tracks spent and reserved money; loop-confined like the rest of the engine's state.

    Estimates are reserved when a call starts and replaced by the actual cost when it ends, so concurrent
    calls cannot together overshoot a budget that each of them alone would fit. A task that fits the money
    spent but not the money reserved waits for calls in flight to settle (the router does the waiting).
    """

    def __init__(self, budget: Budget, *, today: Callable[[], date] = _today) -> None:
        self.budget = budget
        self._today = today
        self._run_spent: defaultdict[str, float] = defaultdict(float)
        self._day = today()
        self._day_spent = 0.0
        self._reserved_run: defaultdict[str, float] = defaultdict(float)
        self._reserved_day = 0.0
        self._in_flight = 0

    @property
    def active(self) -> bool:
        return self.budget.max_cost_usd_per_run is not None or self.budget.max_cost_usd_per_day is not None

    def seed(self, *, run_id: str | None = None, run_spent: float = 0.0, day_spent: float = 0.0) -> None:
        """Start from what the ledger already recorded (a resumed run, earlier runs today)."""
        if run_id is not None:
            self._run_spent[run_id] = run_spent
        self._roll()
        self._day_spent = max(self._day_spent, day_spent)

    def refusal(self, run_id: str, estimate: float, *, reserved: bool = True) -> BudgetRefusal | None:
        """Why a call estimated at `estimate` must not start, or None.

        With `reserved` (the check right before a call) the estimates of calls in flight count too; without
        it (planning) only money already spent does, since reservations settle, often lower.
        """
        self._roll()
        run_cap, day_cap = self.budget.max_cost_usd_per_run, self.budget.max_cost_usd_per_day
        run_total = self._run_spent[run_id] + estimate
        day_total = self._day_spent + estimate
        if reserved:
            run_total += self._reserved_run.get(run_id, 0.0)
            day_total += self._reserved_day
        if run_cap is not None and run_total > run_cap:
            return BudgetRefusal("run", run_total, run_cap)
        if day_cap is not None and day_total > day_cap:
            return BudgetRefusal("day", day_total, day_cap)
        return None

    def room(self, run_id: str, *, reserved: bool = True) -> float:
        """The largest estimate `refusal` would let through now (inf without caps): one check per decision."""
        self._roll()
        room = math.inf
        run_cap, day_cap = self.budget.max_cost_usd_per_run, self.budget.max_cost_usd_per_day
        if run_cap is not None:
            room = run_cap - self._run_spent[run_id] - (self._reserved_run.get(run_id, 0.0) if reserved else 0.0)
        if day_cap is not None:
            room = min(room, day_cap - self._day_spent - (self._reserved_day if reserved else 0.0))
        return room

    @property
    def calls_in_flight(self) -> int:
        """Calls holding a reservation; a task held back only by reservations waits for one to settle."""
        return self._in_flight

    def reserve(self, run_id: str, estimate: float) -> None:
        self._in_flight += 1
        self._reserved_run[run_id] += estimate
        self._reserved_day += estimate

    def settle(self, run_id: str, estimate: float, actual: float) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        if self._in_flight == 0:
            # Nothing in flight: drop the float drift, so no task waits on a reservation that is not there.
            self._reserved_run.clear()
            self._reserved_day = 0.0
        else:
            self._reserved_run[run_id] = max(0.0, self._reserved_run[run_id] - estimate)
            self._reserved_day = max(0.0, self._reserved_day - estimate)
        self._run_spent[run_id] += actual
        self._roll()
        self._day_spent += actual

    def charge(self, run_id: str, amount: float) -> None:
        """Count money as spent outside a call's reserve and settle: a request sent to a vendor batch, counted
        at its estimate while it waits for hours, then corrected by what it was charged (`amount` < 0 gives
        back)."""
        self._roll()
        self._run_spent[run_id] = max(0.0, self._run_spent[run_id] + amount)
        self._day_spent = max(0.0, self._day_spent + amount)

    def run_spent(self, run_id: str) -> float:
        return self._run_spent[run_id]

    def _roll(self) -> None:
        today = self._today()
        if today != self._day:
            self._day, self._day_spent = today, 0.0
