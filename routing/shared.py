"""Limits shared by every routing process (CLI runs, Prefect and Dask workers, the API), through the ledger's database.

    reserve   right before a call, the router asks the store whether the call fits every limit it must (provider
              and subscription windows, run, day and team budgets) with what every process has settled and has in
              flight; granted, the estimate is reserved there
    settle    after the call, its real usage replaces the estimate
    watch     every `refresh_s` the store's blocks and open circuits (set by any process) reach this process

The store does the locking (`ledger.LimitStore`); this side keeps the routing loop free of it: all store work
runs on one thread, which takes every reservation (and settlement) queued meanwhile in one transaction, and
hands the answers back to the loop. The loop awaits an answer; it never blocks on the database. When the store
cannot be reached, the call is refused (`StoreUnavailable`): routing refuses rather than overspends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger import LimitRefusal, LimitStore, Reservation, ReservationAsk, Settlement, SharedState

log = logging.getLogger(__name__)

# A batch of reservations is one transaction; the store's lock is held for its length.
MAX_BATCH = 512
REFRESH_S = 0.5
# Counter buckets no window reaches any more, and ended blocks and circuits, are dropped this often.
PRUNE_EVERY_S = 600.0


@dataclass(frozen=True, slots=True)
class StoreUnavailable:
    """The shared store could not answer: the call must not go out."""

    reason: str

    def __str__(self) -> str:
        return self.reason


Answer = Reservation | LimitRefusal | StoreUnavailable
_Waiter = tuple[ReservationAsk, asyncio.AbstractEventLoop, "asyncio.Future[Answer]"]


class SharedLimits:
    """The process's door to the shared store: reservations and settlements batched on one thread."""

    def __init__(self, store: LimitStore, *, refresh_s: float = REFRESH_S) -> None:
        self.store = store
        self._describe = store.describe_failure
        self.refresh_s = refresh_s
        self._cv = threading.Condition()
        self._asks: list[_Waiter] = []
        self._settles: list[Settlement] = []
        self._writes: list[Callable[[LimitStore], None]] = []
        self._watchers: list[Callable[[SharedState], None]] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._next_refresh = 0.0
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        self._last_event: int | None = None
        # The store's last failure, None while it answers.
        self.error: str | None = None

    # --- what the router calls --------------------------------------------------------------------

    async def reserve(self, ask: ReservationAsk) -> Answer:
        """The store's answer for one call (awaited; the store's work happens on this object's thread)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Answer] = loop.create_future()
        with self._cv:
            if self._stopping:  # closed: nothing would answer
                return StoreUnavailable(f"{self.store.describe_failure(RuntimeError('closed'))}")
            self._asks.append((ask, loop, done))
            self._start()
            self._cv.notify()
        return await done

    def settle(self, reservation: Reservation, *, requests: float, tokens: float, cost: float) -> None:
        """Queue a finished call's real usage (committed with others on the thread)."""
        with self._cv:
            self._settles.append(Settlement(reservation, requests, tokens, cost))
            self._start()
            self._cv.notify()

    def publish(self, write: Callable[[LimitStore], None]) -> None:
        """Queue a change for every process (a block, an open circuit)."""
        with self._cv:
            self._writes.append(write)
            self._start()
            self._cv.notify()

    def watch(self, callback: Callable[[SharedState], None]) -> None:
        """Call `callback` (on this object's thread) with the shared blocks and circuits every `refresh_s`."""
        with self._cv:
            self._watchers.append(callback)
            self._start()

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued (settlements above all), then stop the thread."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # --- the thread -------------------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._run, name="switchboard-shared-limits", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not (self._asks or self._settles or self._writes or self._stopping):
                    wait = self._next_refresh - time.monotonic() if self._watchers else None
                    if wait is not None and wait <= 0:
                        break
                    self._cv.wait(wait)
                asks, self._asks = self._asks[:MAX_BATCH], self._asks[MAX_BATCH:]
                settles, self._settles = self._settles, []
                writes, self._writes = self._writes, []
                stopping = self._stopping and not self._asks
            for write in writes:
                self._guard(lambda w=write: w(self.store))  # type: ignore[misc]
            # One transaction: settle first (what calls really used frees room), then reserve.
            failed = bool(asks or settles) and not self._transact(settles, asks)
            if failed and settles and not stopping:
                with self._cv:
                    self._settles[:0] = settles  # the store is down: settle them with a later batch
            if time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + PRUNE_EVERY_S
                self._guard(self.store.prune)  # type: ignore[arg-type]
            if self._watchers and time.monotonic() >= self._next_refresh:
                self._next_refresh = time.monotonic() + self.refresh_s
                self._refresh()
            if stopping:
                return

    def _transact(self, settles: list[Settlement], asks: list[_Waiter]) -> bool:
        """Settle and reserve in one transaction; False when the store failed (the asks are refused)."""
        try:
            answers: list[Answer] = list(self.store.transact(settles, [ask for ask, _, _ in asks]))
            self.error = None
            ok = True
        except Exception as exc:  # any failure of the store refuses the calls: never overspend
            self.error = self._describe(exc)
            log.warning("%s", self.error)
            answers = [StoreUnavailable(self.error)] * len(asks)
            ok = False
            if not asks:
                time.sleep(0.05)  # only settlements waiting on a store that is down: do not spin
        for (_, loop, done), answer in zip(asks, answers, strict=True):
            with contextlib.suppress(RuntimeError):  # the loop closed while the answer was on its way
                loop.call_soon_threadsafe(_resolve, done, answer)
        return ok

    def _refresh(self) -> None:
        state = self._guard(lambda: self.store.state(self._last_event))
        if state is None:
            return
        self._last_event = state.last_event_id
        for watcher in list(self._watchers):
            try:
                watcher(state)
            except Exception:
                log.exception("a shared-limits watcher failed")

    def _guard(self, work: Callable[[], SharedState | None]) -> SharedState | None:
        try:
            return work()
        except Exception as exc:
            self.error = self._describe(exc)
            log.warning("%s", self.error)
            return None


def _resolve(done: asyncio.Future[Answer], answer: Answer) -> None:
    if not done.done():
        done.set_result(answer)


__all__ = ["Answer", "SharedLimits", "StoreUnavailable"]
