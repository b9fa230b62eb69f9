"""Per-provider concurrency slots and the queue of tasks waiting for a turn; urgent tasks are woken first.

A slot is not handed to a waiter blindly: a waiter is woken (by rank, then arrival) when a slot frees or the
provider's state changes, and it re-checks everything that may have changed while it waited (circuit,
quota, budget) before it takes the slot, waits again keeping its place, or leaves for another provider.
Woken waiters go before newcomers, so waiting never loses a turn. Loop-confined: no locks.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class PriorityGate:
    """At most `limit` calls in flight; a queue of waiters ordered by rank (higher first), then arrival."""

    __slots__ = ("_arrival", "_queue", "_woken", "in_use", "limit", "waiting")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._queue: list[tuple[int, int, asyncio.Future[None]]] = []
        # Tasks queued for a turn (read per decision by least_loaded, so kept as a plain attribute).
        self.waiting = 0
        self._arrival = itertools.count()
        # Waiters woken but not yet resumed; until they have had their look, newcomers queue behind them.
        self._woken = 0

    @property
    def has_room(self) -> bool:
        return self.in_use < self.limit

    @property
    def queued(self) -> bool:
        """Whether anyone is ahead of a newcomer (queued or woken and about to re-check)."""
        return bool(self._queue) or self._woken > 0

    async def wait(self, rank: int, ticket: int | None = None) -> int:
        """Queue until woken; returns the ticket that keeps this waiter's place if it has to wait again."""
        if ticket is None:
            ticket = next(self._arrival)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queue, (-rank, ticket, waiter))
        self.waiting = len(self._queue)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._woken -= 1
                self.wake()  # woken just as we were cancelled: pass the turn on
            else:
                self._queue = [w for w in self._queue if w[2] is not waiter]
                heapq.heapify(self._queue)
                self.waiting = len(self._queue)
            raise
        self._woken -= 1
        return ticket

    def wake(self, n: int = 1) -> None:
        """Wake the `n` most urgent waiters so they re-check whether they can go."""
        while n > 0 and self._queue:
            _, _, waiter = heapq.heappop(self._queue)
            if not waiter.done():
                waiter.set_result(None)
                self._woken += 1
                n -= 1
        self.waiting = len(self._queue)

    def wake_all(self) -> None:
        self.wake(len(self._queue))

    def enter(self) -> None:
        self.in_use += 1
        if self.in_use < self.limit and self._queue and not self._woken:
            # Room is left and the last woken waiter has just taken its turn: the next waiter looks too. A
            # task that arrived while others were woken queued behind them; without this it would wait for a
            # call to finish (`leave`), and the queue would drain one call at a time with slots free.
            self.wake()

    def leave(self) -> None:
        if self.in_use > 0:
            self.in_use -= 1
        self.wake()
