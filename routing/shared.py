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

Leases keep the store off the path of most calls. A reservation is taken for the calls waiting on the same
limits plus some spare (`ReservationAsk.spare`: granted only out of plenty, at most a quarter of what is left);
the calls that follow take their share of it in this process, without asking the store, for at most `LEASE_S`
and never past the end of the smallest counter bucket it was granted in (so each call is counted in the bucket
it was made in, as if it had reserved alone). Its calls' real usage is added up here and settled in one go when
the lease retires; a spare it did not use is released at once, so other processes find it again within
`LEASE_S`. A process that dies leaves its lease to expire, charged at its estimate for the calls it covered.
The spare per set of limits follows the pace of its calls: what the last lease would have covered over `LEASE_S`.

Holds are reservations without a lease, for work that waits for hours (a request in a vendor batch, which counts
in the budgets from the moment it is submitted): each is its own reservation, asked in the same transactions,
settled on its own when its answer comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ledger import LimitCheck, LimitRefusal, LimitStore, Release, Reservation, ReservationAsk, Settlement, SharedState

log = logging.getLogger(__name__)

# A batch of reservations is one transaction; the store's lock is held for its length.
MAX_BATCH = 512
REFRESH_S = 0.5
# Counter buckets no window reaches any more, and ended blocks and circuits, are dropped this often.
PRUNE_EVERY_S = 600.0
# A lease is used for at most this long; its spare goes back to the store when it retires.
LEASE_S = 0.5
# Calls' worth a lease may hold beyond the calls waiting for it.
MAX_SPARE = 64
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class StoreUnavailable:
    """The shared store could not answer: the call must not go out."""

    reason: str

    def __str__(self) -> str:
        return self.reason


_Key = tuple[LimitCheck, ...]


class _Lease:
    """A reservation this process hands out call by call (see the module's doc)."""

    __slots__ = ("born", "handed", "key", "left", "offset", "outstanding", "reservation", "retired", "until", "used")

    def __init__(self, key: _Key, reservation: Reservation, until: float, offset: float) -> None:
        self.key = key
        self.reservation = reservation  # what the store holds for it now
        # Not handed to a call yet: requests, tokens, cost, cost at list price.
        list_cost = reservation.cost if reservation.list_cost is None else reservation.list_cost
        self.left = [reservation.requests, reservation.tokens, reservation.cost, list_cost]
        self.used = [0.0, 0.0, 0.0, 0.0]  # real usage of its calls that ended: requests, tokens, cost, list cost
        self.outstanding = 0  # calls handed out and not settled
        self.until = until  # the store's clock
        self.offset = offset  # store clock minus this machine's monotonic clock, when no clock is injected
        self.retired = False
        self.born = time.monotonic()
        self.handed = 0  # calls it covered

    def take(self, ask: ReservationAsk, now: float) -> bool:
        left = self.left
        if self.retired or now >= self.until:
            return False
        list_cost = ask.cost if ask.list_cost is None else ask.list_cost
        if (
            ask.requests > left[0] + _EPS
            or ask.tokens > left[1] + _EPS
            or ask.cost > left[2] + _EPS
            or list_cost > left[3] + _EPS
        ):
            return False
        left[0] -= ask.requests
        left[1] -= ask.tokens
        left[2] -= ask.cost
        left[3] -= list_cost
        self.outstanding += 1
        self.handed += 1
        return True

    def calls_per_life(self) -> int:
        """How many calls it would have covered over a whole `LEASE_S` at the pace they came."""
        return math.ceil(self.handed * LEASE_S / max(time.monotonic() - self.born, 0.01))


@dataclass(frozen=True, slots=True)
class Ticket:
    """One call's share of a lease: settle it with the call's real usage."""

    lease: _Lease


Answer = Ticket | LimitRefusal | StoreUnavailable
_Waiter = tuple[ReservationAsk, asyncio.AbstractEventLoop, "asyncio.Future[Answer]"]
HoldAnswer = Reservation | LimitRefusal | StoreUnavailable
_HoldWaiter = tuple[ReservationAsk, asyncio.AbstractEventLoop, "asyncio.Future[HoldAnswer]"]


class SharedLimits:
    """The process's door to the shared store: reservations and settlements batched on one thread."""

    def __init__(self, store: LimitStore, *, refresh_s: float = REFRESH_S) -> None:
        self.store = store
        self._describe = store.describe_failure
        self.refresh_s = refresh_s
        self._cv = threading.Condition()
        self._asks: list[_Waiter] = []
        self._holds: list[_HoldWaiter] = []
        self._settles: list[Settlement] = []
        self._releases: list[Release] = []
        self._writes: list[Callable[[LimitStore], None]] = []
        self._leases: dict[_Key, _Lease] = {}  # the lease in use per set of limits
        self._retiring: list[_Lease] = []  # retired with calls still out: settled when the last one ends
        self._spare: dict[_Key, int] = {}
        self._clock = store.injected_clock
        self._watchers: list[Callable[[SharedState], None]] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._next_refresh = 0.0
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        self._last_event: int | None = None
        # The store's last failure, None while it answers.
        self.error: str | None = None
        # Calls granted from a lease in use without asking the store, and the store's transactions (benchmarks).
        self.calls_from_leases = 0
        self.transactions = 0

    # --- what the router calls --------------------------------------------------------------------

    async def reserve(self, ask: ReservationAsk) -> Answer:
        """The answer for one call: from this process's lease when it has room, else from the store (awaited;
        the store's work happens on this object's thread)."""
        with self._cv:
            if self._stopping:  # closed: nothing would answer
                return StoreUnavailable(f"{self.store.describe_failure(RuntimeError('closed'))}")
            ticket = self._from_lease(ask)
            if ticket is not None:
                self.calls_from_leases += 1
                return ticket
            loop = asyncio.get_running_loop()
            done: asyncio.Future[Answer] = loop.create_future()
            self._asks.append((ask, loop, done))
            self._start()
            self._cv.notify()
        return await done

    async def hold(self, ask: ReservationAsk) -> HoldAnswer:
        """A reservation of its own, outside leases, for a wait that may last hours (a request in a vendor batch):
        in a lease it would keep the lease from settling until its last call ends, and it would share the lease
        with live calls that happen to ask for the same limits. Settle it with `settle_hold`; if this process dies
        first, it expires after its `ttl_s`, charged at its estimate."""
        with self._cv:
            if self._stopping:
                return StoreUnavailable(f"{self.store.describe_failure(RuntimeError('closed'))}")
            loop = asyncio.get_running_loop()
            done: asyncio.Future[HoldAnswer] = loop.create_future()
            self._holds.append((ask, loop, done))
            self._start()
            self._cv.notify()
        return await done

    def settle_hold(
        self,
        reservation: Reservation,
        *,
        requests: float,
        tokens: float,
        cost: float,
        list_cost: float | None = None,
    ) -> None:
        """Replace a `hold`'s estimate with what was really used (0 for work that never went out)."""
        with self._cv:
            self._settles.append(Settlement(reservation, requests, tokens, cost, list_cost))
            self._start()
            self._cv.notify()

    def settle(
        self, ticket: Ticket, *, requests: float, tokens: float, cost: float, list_cost: float | None = None
    ) -> None:
        """Count a finished call's real usage into its lease (settled in the store when the lease retires).
        `cost` is what it was charged (budgets), `list_cost` its list price when that differs (limits)."""
        lease = ticket.lease
        with self._cv:
            used = lease.used
            used[0] += requests
            used[1] += tokens
            used[2] += cost
            used[3] += cost if list_cost is None else list_cost
            lease.outstanding -= 1
            if lease.outstanding:
                return
            if lease.retired:
                self._retiring.remove(lease)
                self._settles.append(_settlement(lease))
            elif lease.left[0] < 1 - _EPS:  # used up and its calls ended: settle now, not at its end
                self._retire(lease)
            else:
                return
            self._start()
            self._cv.notify()

    async def claim_probe(self, provider_id: str, hold_s: float) -> float | StoreUnavailable:
        """`LimitStore.claim_probe`, on this object's thread (awaited)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[float | StoreUnavailable] = loop.create_future()

        def claim(store: LimitStore) -> None:
            try:
                answer: float | StoreUnavailable = store.claim_probe(provider_id, hold_s)
            except Exception as exc:
                answer = StoreUnavailable(self._describe(exc))
            with contextlib.suppress(RuntimeError):  # the loop closed while the answer was on its way
                loop.call_soon_threadsafe(_resolve, done, answer)

        with self._cv:
            if self._stopping:
                return StoreUnavailable(f"{self.store.describe_failure(RuntimeError('closed'))}")
            self._writes.append(claim)
            self._start()
            self._cv.notify()
        return await done

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
                while not (self._asks or self._holds or self._settles or self._writes or self._stopping):
                    wait = self._next_refresh - time.monotonic() if self._watchers else None
                    due = self._next_lease_end()
                    if due is not None:
                        wait = due if wait is None else min(wait, due)
                    if wait is not None and wait <= 0:
                        break
                    self._cv.wait(wait)
                self._retire_leases(everything=self._stopping)
                asks, self._asks = self._asks[:MAX_BATCH], self._asks[MAX_BATCH:]
                groups = self._group(asks)
                holds, self._holds = self._holds, []
                settles, self._settles = self._settles, []
                releases, self._releases = self._releases, []
                writes, self._writes = self._writes, []
                stopping = self._stopping and not self._asks
            for write in writes:
                self._guard(lambda w=write: w(self.store))  # type: ignore[misc]
            # One transaction: release and settle first (what calls really used frees room), then reserve.
            failed = bool(groups or holds or settles or releases) and not self._transact(
                settles, releases, groups, holds
            )
            if failed and (settles or releases) and not stopping:
                with self._cv:  # the store is down: settle them with a later batch
                    self._settles[:0] = settles
                    self._releases[:0] = releases
            if time.monotonic() >= self._next_prune:
                self._next_prune = time.monotonic() + PRUNE_EVERY_S
                self._guard(self.store.prune)  # type: ignore[arg-type]
            if self._watchers and time.monotonic() >= self._next_refresh:
                self._next_refresh = time.monotonic() + self.refresh_s
                self._refresh()
            if stopping:
                with self._cv:
                    if not self._asks:  # none handed back by a lease too small for them: every ask answered
                        return

    def _hand(self, waiter: _Waiter, answer: Answer) -> None:
        _, loop, done = waiter
        with contextlib.suppress(RuntimeError):  # the loop closed while the answer was on its way
            loop.call_soon_threadsafe(self._answer, done, answer)

    def _hand_hold(self, waiter: _HoldWaiter, answer: HoldAnswer) -> None:
        _, loop, done = waiter
        with contextlib.suppress(RuntimeError):  # the loop closed while the answer was on its way
            loop.call_soon_threadsafe(self._answer_hold, done, answer)

    def _answer_hold(self, done: asyncio.Future[HoldAnswer], answer: HoldAnswer) -> None:
        """On the asker's loop. An asker cancelled meanwhile never sends its work: the hold goes back."""
        if not done.done():
            done.set_result(answer)
        elif isinstance(answer, Reservation):
            self.settle_hold(answer, requests=0, tokens=0, cost=0)

    def _answer(self, done: asyncio.Future[Answer], answer: Answer) -> None:
        """On the asker's loop. An asker cancelled meanwhile never makes its call: its share goes back."""
        if not done.done():
            done.set_result(answer)
        elif isinstance(answer, Ticket):
            self.settle(answer, requests=0, tokens=0, cost=0)

    # --- leases (called with `_cv` held) --------------------------------------------------------------

    def _lease_now(self, lease: _Lease) -> float:
        return self._clock() if self._clock is not None else time.monotonic() + lease.offset

    def _from_lease(self, ask: ReservationAsk) -> Ticket | None:
        lease = self._leases.get(ask.checks)
        if lease is None:
            return None
        if lease.take(ask, self._lease_now(lease)):
            return Ticket(lease)
        if not lease.retired and self._lease_now(lease) < lease.until:
            self._retire(lease)  # out of room before its time
        return None

    def _next_lease_end(self) -> float | None:
        """Seconds until the first lease in use ends (None: none is)."""
        ends = [lease.until - self._lease_now(lease) for lease in self._leases.values()]
        return max(0.0, min(ends)) if ends else None

    def _retire_leases(self, *, everything: bool) -> None:
        for lease in list(self._leases.values()):
            if everything or self._lease_now(lease) >= lease.until:
                self._retire(lease)

    def _retire(self, lease: _Lease) -> None:
        """No more calls from `lease`: its spare goes back at once; its usage is settled once its calls ended."""
        lease.retired = True
        # The next lease for these limits holds what this one's pace says the calls of one lease's time need.
        self._spare[lease.key] = min(MAX_SPARE, lease.calls_per_life())
        if self._leases.get(lease.key) is lease:
            del self._leases[lease.key]
        if lease.outstanding == 0:
            self._settles.append(_settlement(lease))
            return
        left = lease.left
        if any(x > _EPS for x in left):
            r = lease.reservation
            list_left = None if r.list_cost is None else left[3]
            self._releases.append(Release(r, left[0], left[1], left[2], list_left))
            lease.reservation = replace(
                r,
                requests=r.requests - left[0],
                tokens=r.tokens - left[1],
                cost=r.cost - left[2],
                list_cost=None if r.list_cost is None else r.list_cost - left[3],
            )
            lease.left = [0.0, 0.0, 0.0, 0.0]
        self._retiring.append(lease)

    def _group(self, asks: list[_Waiter]) -> list[tuple[ReservationAsk, list[_Waiter]]]:
        """The asks still waiting after the leases in use took what they could, as one ask per set of limits."""
        by_key: dict[_Key, list[_Waiter]] = {}
        for waiter in asks:
            ticket = self._from_lease(waiter[0])
            if ticket is not None:
                self._hand(waiter, ticket)
            else:
                by_key.setdefault(waiter[0].checks, []).append(waiter)
        groups = []
        for key, waiters in by_key.items():
            ask = ReservationAsk(
                key,
                requests=max(w[0].requests for w in waiters),
                tokens=max(w[0].tokens for w in waiters),
                cost=max(w[0].cost for w in waiters),
                list_cost=_most_list_cost([w[0] for w in waiters]),
                ttl_s=max(w[0].ttl_s for w in waiters) + LEASE_S,
                units=len(waiters),
                spare=self._spare.get(key, 1),
            )
            groups.append((ask, waiters))
        return groups

    def _lease_granted(self, ask: ReservationAsk, reservation: Reservation, waiters: list[_Waiter]) -> None:
        """Hand a granted reservation to the calls waiting for it; the rest of it is the new lease's spare.
        Waiters it did not cover ask again with the next batch (where the store says why it refuses)."""
        until = reservation.granted_at + LEASE_S
        for check in ask.checks:
            if check.window.bucket_s > 0:
                start, _ = check.window.first_bucket(reservation.granted_at)
                until = min(until, start + check.window.bucket_s)
        offset = reservation.granted_at - time.monotonic()
        lease = _Lease(ask.checks, reservation, until, offset)
        # Handed out even if its time is up already (its bucket ended on the way back): these calls asked in it.
        for i, waiter in enumerate(waiters):
            if not lease.take(waiter[0], float("-inf")):
                self._asks[:0] = waiters[i:]
                break
            self._hand(waiter, Ticket(lease))
        old = self._leases.get(ask.checks)
        if old is not None:
            self._retire(old)
        self._leases[ask.checks] = lease
        if self._lease_now(lease) >= until:
            self._retire(lease)

    def _transact(
        self,
        settles: list[Settlement],
        releases: list[Release],
        groups: list[tuple[ReservationAsk, list[_Waiter]]],
        holds: list[_HoldWaiter],
    ) -> bool:
        """Release, settle and reserve in one transaction; False when the store failed (the asks are refused)."""
        self.transactions += 1
        try:
            answers = self.store.transact(settles, [ask for ask, _ in groups] + [h[0] for h in holds], releases)
            self.error = None
        except Exception as exc:  # any failure of the store refuses the calls: never overspend
            self.error = self._describe(exc)
            log.warning("%s", self.error)
            self._retire_all()
            refusal = StoreUnavailable(self.error)
            for _, waiters in groups:
                for waiter in waiters:
                    self._hand(waiter, refusal)
            for held in holds:
                self._hand_hold(held, refusal)
            if not groups and not holds:
                time.sleep(0.05)  # only settlements waiting on a store that is down: do not spin
            return False
        for held, hold_answer in zip(holds, answers[len(groups) :], strict=True):
            self._hand_hold(held, hold_answer)
        with self._cv:
            for (ask, waiters), answer in zip(groups, answers[: len(groups)], strict=True):
                if isinstance(answer, Reservation):
                    self._lease_granted(ask, answer, waiters)
                else:
                    for waiter in waiters:
                        self._hand(waiter, answer)
        return True

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
            self._retire_all()
            return None

    def _retire_all(self) -> None:
        """The store failed: no more calls on leases either, until it answers again (what they reserved is
        reserved, but a store that is down may have been reset or lost; the calls are refused instead)."""
        with self._cv:
            for lease in list(self._leases.values()):
                self._retire(lease)


def _most_list_cost(asks: list[ReservationAsk]) -> float | None:
    """The highest list-price estimate of asks grouped in one lease (None when none differs from its charge)."""
    if all(ask.list_cost is None for ask in asks):
        return None
    return max(ask.cost if ask.list_cost is None else ask.list_cost for ask in asks)


def _settlement(lease: _Lease) -> Settlement:
    requests, tokens, cost, list_cost = lease.used
    return Settlement(lease.reservation, requests, tokens, cost, list_cost)


def _resolve(done: asyncio.Future[Any], answer: object) -> None:
    if not done.done():
        done.set_result(answer)


__all__ = ["Answer", "HoldAnswer", "SharedLimits", "StoreUnavailable", "Ticket"]
