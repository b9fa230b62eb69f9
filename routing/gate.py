"""Per-provider concurrency slots; when they are all taken, more urgent tasks are let in first."""

from __future__ import annotations

import asyncio
import heapq
import itertools


class PriorityGate:
    """At most `limit` holders; waiters are woken by rank (higher first), then arrival order. Loop-confined."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()

    @property
    def free(self) -> bool:
        return self.in_use < self.limit and not self._waiters

    async def acquire(self, rank: int = 0) -> None:
        if self.free:
            self.in_use += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (-rank, next(self._arrival), waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed to us just as we were cancelled: pass it on
            else:
                self._waiters = [w for w in self._waiters if w[2] is not waiter]
                heapq.heapify(self._waiters)
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                waiter.set_result(None)  # the slot moves straight to the waiter; in_use is unchanged
                return
        self.in_use -= 1
