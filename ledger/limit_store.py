"""The limits every routing process shares, kept in the ledger's own database (migration 0005).

    reserve   before a call: for each limit it must fit (a provider's or subscription's window, a run, day or team
              budget), settled usage + reservations in flight + this call <= the limit; if every one fits, the
              call's estimate is added to the counters as reserved and a reservation row remembers where
    settle    after it: the estimate leaves `reserved_*`, the real usage goes into the settled columns
    expire    a reservation whose process died (never settled within its time to live) is charged at its estimate
              and removed: the call may have been paid, so it is never refunded, and nothing is counted twice

Every change runs in one transaction that first takes the store's lock: on PostgreSQL a transaction-level advisory
lock (`pg_advisory_xact_lock`), which serializes the writers of every process and host (READ COMMITTED: each
statement after it sees all that committed before); on SQLite an update of the single `shared_lock` row, which
takes the database's write lock and so serializes the processes of one machine. An existing, proven
mechanism, no protocol of our own. Many reservations (or settlements) share one
transaction, so the lock is taken once per batch, not per call.

Windows are buckets on the store's clock (`now()` reads the database's unless a test injects one): a sliding
window of span S counts the buckets of S/60 seconds that cover at least the last S seconds (up to one bucket more:
it errs on the side of the limit); a UTC day is one bucket starting at midnight; a run's budget one bucket for ever.
"""

from __future__ import annotations

import functools
import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import Connection, Engine, TextClause, bindparam, delete, func, select, text

from ledger.db import database_reason, shown_url
from ledger.models import ProviderEvent, SharedBlock, SharedCircuit, SharedCounter, SharedReservation

Measure = Literal["requests", "tokens", "cost"]
# The provider_events kind of a reset by hand (`switchboard providers reset`): every process clears its own view.
RESET_EVENT = "provider.reset"
# How every refusal for an unusable store begins (task errors carry it; `switchboard run` looks for it).
STORE_UNAVAILABLE = "the shared limits store"
_MEASURES: tuple[Measure, ...] = ("requests", "tokens", "cost")


@dataclass(frozen=True, slots=True)
class Window:
    """How a limit's usage is counted: buckets of `bucket_s` seconds, the current one and `earlier` before it."""

    bucket_s: int  # 0: a single bucket for ever (a run's budget)
    earlier: int

    def first_bucket(self, now: float) -> tuple[int, int]:
        """(start of the current bucket, start of the oldest bucket counted)."""
        if self.bucket_s == 0:
            return 0, 0
        current = int(now // self.bucket_s) * self.bucket_s
        return current, current - self.earlier * self.bucket_s


UTC_DAY = Window(86_400, 0)
FOREVER = Window(0, 0)


def sliding(span_s: float) -> Window:
    """A sliding window of `span_s` seconds as 60 buckets plus one (never shorter than the span)."""
    bucket = max(1, int(span_s) // 60)
    return Window(bucket, -(-int(span_s) // bucket))


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """One limit a call must fit: `measure` in `scope` over `window` may reach at most `limit`."""

    scope: str
    name: str  # what a refusal calls it, e.g. "requests_per_hour" or "day"
    measure: Measure
    window: Window
    limit: float


@dataclass(frozen=True, slots=True)
class ReservationAsk:
    """Calls about to go out: the limits they must fit and one call's estimate.

    `units` calls need it now: as many of them as fit are granted, in one reservation. `spare`: more calls'
    worth the asker would like to hold for calls it expects soon (a lease), granted only out of plenty, at most
    `LEASE_SHARE` of what would be left, so processes that ask later still find room."""

    checks: tuple[LimitCheck, ...]
    requests: float
    tokens: float
    cost: float
    ttl_s: float  # settled by then, or charged at the estimate
    units: int = 1
    spare: int = 0
    # One call's estimate at list price, when that differs from its charge (see `Settlement`); None: the same.
    list_cost: float | None = None


@dataclass(frozen=True, slots=True)
class LimitRefusal:
    """The first limit an ask would break: what was settled and reserved in its window, and the ask's amount."""

    check: LimitCheck
    settled: float
    reserved: float
    amount: float

    @property
    def total(self) -> float:
        """What the window would have reached with the call."""
        return self.settled + self.reserved + self.amount

    @property
    def held_by_reservations(self) -> bool:
        """Whether the settled usage alone would have let the call through: calls in flight may settle lower."""
        return self.settled + self.amount <= self.check.limit


@dataclass(frozen=True, slots=True)
class Reservation:
    """A granted ask: what was reserved where (settle it with the real usage); `units` calls' worth, as many of
    the ask's `units` as fit plus any spare."""

    id: str
    rows: tuple[tuple[str, int, int], ...]
    requests: float
    tokens: float
    cost: float
    units: int = 1
    granted_at: float = 0.0  # the store's clock
    list_cost: float | None = None  # at list price, when that differs from `cost`


@dataclass(frozen=True, slots=True)
class Settlement:
    """A finished call's real usage for its reservation. `cost` is what it was charged, which budgets count;
    `list_cost` what it used at list price, which provider and subscription cost limits count (a subscription
    login's call is charged 0 but uses its list price of the login's allowance); None: the same as `cost`."""

    reservation: Reservation
    requests: float
    tokens: float
    cost: float
    list_cost: float | None = None


def is_budget_scope(scope: str) -> bool:
    """Budgets (run, day, team) count what calls are charged; every other scope is a limit on usage."""
    return scope.startswith("budget:")


def cost_in(scope: str, cost: float, list_cost: float | None) -> float:
    """The cost `scope`'s counters count of a call charged `cost` whose list price is `list_cost` (None: `cost`)."""
    return cost if list_cost is None or is_budget_scope(scope) else list_cost


@dataclass(frozen=True, slots=True)
class Release:
    """Part of a live reservation its process no longer needs (a lease's calls that were never made): it leaves
    `reserved_*` at once; the rest stays reserved until settled (or expires, charged at what is left)."""

    reservation: Reservation
    requests: float
    tokens: float
    cost: float
    list_cost: float | None = None


@dataclass(frozen=True, slots=True)
class SharedState:
    """Blocks and open circuits in force now, and the store's clock when read."""

    now: float
    blocks: dict[str, tuple[float, str]] = field(default_factory=dict)  # scope -> (until, reason)
    circuits: dict[str, float] = field(default_factory=dict)  # provider id -> open until
    circuit_setters: dict[str, str] = field(default_factory=dict)  # provider id -> the owner that opened it
    resets: tuple[tuple[str, str | None], ...] = ()  # (provider id, subscription) reset by hand, oldest first
    last_event_id: int = 0


# Built once: on the path of every call, building SQLAlchemy statements would cost more than running them.
# The store's clock, per database (SQLite's is the machine's: SQLite serves the processes of one machine).
_CLOCK_SQL = {
    "sqlite": "(julianday('now') - 2440587.5) * 86400.0",
    "postgresql": "extract(epoch from clock_timestamp())",
}
_CLOCK = {name: text(f"SELECT {sql}") for name, sql in _CLOCK_SQL.items()}
# Take the lock and read the clock in one round trip (the clock read after the lock is granted). On PostgreSQL a
# transaction-level advisory lock: updating one row thousands of times a second leaves a chain of dead row versions
# every later update walks until vacuum catches up (measured: a reservation went from 7 ms to 100 ms on a loaded
# machine after a few thousand calls). On SQLite the update of the lock row takes the database's write lock.
LIMITS_LOCK_KEY = 0x73626C696D697473  # "sblimits" in ASCII
_LOCK_CLOCK = {
    "sqlite": text(f"UPDATE shared_lock SET ticks = ticks + 1 WHERE id = 1 RETURNING {_CLOCK_SQL['sqlite']}"),
    # synchronous_commit off for this transaction only (set_config(..., true) is SET LOCAL): see README, "Limits
    # shared by every process" - a PostgreSQL crash may lose the last fraction of a second of counter changes, never
    # an attempt row (the ledger's own commits stay synchronous); waiting for the WAL flush cost a reservation
    # 1 to 5 ms here.
    "postgresql": text(
        f"SELECT {_CLOCK_SQL['postgresql']} FROM (SELECT pg_advisory_xact_lock({LIMITS_LOCK_KEY}), "
        "set_config('synchronous_commit', 'off', true)) AS locked"
    ),
}
_SUM_COLUMNS = (
    "coalesce(sum(requests), 0), coalesce(sum(tokens), 0), coalesce(sum(cost), 0), "
    "coalesce(sum(reserved_requests), 0), coalesce(sum(reserved_tokens), 0), coalesce(sum(reserved_cost), 0)"
)
_ADD = text(
    "INSERT INTO shared_counters (scope, bucket_s, bucket_start, requests, tokens, cost, "
    "reserved_requests, reserved_tokens, reserved_cost) "
    "VALUES (:scope, :bucket_s, :bucket_start, :r, :t, :c, :rr, :rt, :rc) "
    "ON CONFLICT (scope, bucket_s, bucket_start) DO UPDATE SET "
    "requests = shared_counters.requests + excluded.requests, "
    "tokens = shared_counters.tokens + excluded.tokens, "
    "cost = shared_counters.cost + excluded.cost, "
    "reserved_requests = shared_counters.reserved_requests + excluded.reserved_requests, "
    "reserved_tokens = shared_counters.reserved_tokens + excluded.reserved_tokens, "
    "reserved_cost = shared_counters.reserved_cost + excluded.reserved_cost"
)
_INSERT_RESERVATIONS = SharedReservation.__table__.insert()
_DELETE_RESERVATIONS = delete(SharedReservation).where(SharedReservation.id.in_(bindparam("ids", expanding=True)))
_DELETE_RESERVATIONS_RETURNING = _DELETE_RESERVATIONS.returning(SharedReservation.id)
_LIVE_RESERVATIONS = select(SharedReservation.id, SharedReservation.rows).where(
    SharedReservation.id.in_(bindparam("ids", expanding=True))
)
_R = SharedReservation.__table__.c
_SHRINK_RESERVATION = (
    SharedReservation.__table__.update()
    .where(_R.id == bindparam("rid"))
    .values(
        requests=_R.requests - bindparam("r"),
        tokens=_R.tokens - bindparam("t"),
        cost=_R.cost - bindparam("c"),
        rows=bindparam("kept", type_=_R.rows.type),
    )
)
_EXPIRED = select(
    SharedReservation.id,
    SharedReservation.requests,
    SharedReservation.tokens,
    SharedReservation.cost,
    SharedReservation.rows,
).where(SharedReservation.expires_at < bindparam("now"))
# A lease takes at most this share of what is left once the calls that need it now are granted.
LEASE_SHARE = 0.25
# Reservations are looked at for expiry at most this often per store object (their time to live is minutes).
EXPIRE_EVERY_S = 1.0

StoreClock = Callable[[], float]
_Key = tuple[str, int, int]
_Sums = tuple[float, float, float, float, float, float]  # settled r/t/c, reserved r/t/c


class LimitStore:
    """The shared limits in the ledger's database; thread-safe (each call uses its own transaction)."""

    def __init__(self, engine: Engine, *, owner: str, clock: StoreClock | None = None) -> None:
        self.engine = engine
        self.owner = owner
        self._clock = clock
        self._sqlite = engine.dialect.name == "sqlite"
        self._clock_sql = _CLOCK.get(engine.dialect.name, _CLOCK["postgresql"])
        self._lock_clock = _LOCK_CLOCK.get(engine.dialect.name, _LOCK_CLOCK["postgresql"])
        self._next_expire = 0.0

    # --- reservations -----------------------------------------------------------------------------

    def reserve(self, asks: Sequence[ReservationAsk]) -> list[Reservation | LimitRefusal]:
        """Grant or refuse each ask in order, in one transaction (an ask sees those granted before it)."""
        return self.transact((), asks)

    def settle(self, settlements: Iterable[Settlement]) -> None:
        """Move reservations' estimates out of `reserved_*` and their real usage in, in one transaction. A
        reservation that expired meanwhile was charged at its estimate: only usage above it is added."""
        items = list(settlements)
        if items:
            self.transact(items, ())

    def transact(
        self,
        settlements: Sequence[Settlement],
        asks: Sequence[ReservationAsk],
        releases: Sequence[Release] = (),
    ) -> list[Reservation | LimitRefusal]:
        """Release, settle, then reserve, in one transaction: what calls really used (and what leases give back)
        frees room for the asks behind them."""
        with self.engine.begin() as conn:
            now = self._locked_now(conn)
            if time.monotonic() >= self._next_expire:
                self._next_expire = time.monotonic() + EXPIRE_EVERY_S
                self._expire(conn, now)
            if releases:
                self._release(conn, releases)
            if settlements:
                self._settle(conn, settlements)
            return self._reserve(conn, asks, now) if asks else []

    def _reserve(
        self, conn: Connection, asks: Sequence[ReservationAsk], now: float
    ) -> list[Reservation | LimitRefusal]:
        # (scope, bucket size) -> its window's sums in this transaction, updated as asks are granted.
        sums = self._all_sums(conn, asks, now)
        adds: dict[_Key, list[float]] = {}
        granted: list[dict[str, object]] = []
        out: list[Reservation | LimitRefusal] = []
        for ask in asks:
            # How many calls' worth fit every limit, and the limit that stops the next one.
            fit, binding = math.inf, None
            for check in ask.checks:
                window_sums = self._sums(conn, sums, check, now)
                index = _MEASURES.index(check.measure)
                amount = (ask.requests, ask.tokens, cost_in(check.scope, ask.cost, ask.list_cost))[index]
                if amount <= 0:
                    continue
                free = check.limit + 1e-9 - window_sums[index] - window_sums[3 + index]
                fits = max(0, math.floor(free / amount))
                if fits < fit:
                    fit, binding = fits, (check, window_sums[index], window_sums[3 + index], amount)
            if fit < 1:
                assert binding is not None
                out.append(LimitRefusal(*binding))
                continue
            needed = min(ask.units, fit)
            spare = ask.spare if fit == math.inf else min(ask.spare, math.floor((fit - needed) * LEASE_SHARE))
            units = int(needed + spare)
            rows: list[_Key] = []
            stored_rows: list[list[object]] = []
            for check in ask.checks:
                row = (check.scope, check.window.bucket_s, check.window.first_bucket(now)[0])
                if row in rows:
                    continue  # two limits of one scope over windows of one bucket size share their row
                rows.append(row)
                window_sums = sums[(check.scope, check.window.bucket_s)]
                add = adds.setdefault(row, [0.0] * 6)
                row_cost = cost_in(check.scope, ask.cost, ask.list_cost) * units
                for i, amount in enumerate((ask.requests * units, ask.tokens * units, row_cost)):
                    window_sums[3 + i] += amount
                    add[3 + i] += amount
                stored_rows.append([*row, row_cost])  # the cost reserved there, which expiry charges
            reservation = Reservation(
                uuid.uuid4().hex,
                tuple(rows),
                ask.requests * units,
                ask.tokens * units,
                ask.cost * units,
                units=units,
                granted_at=now,
                list_cost=None if ask.list_cost is None else ask.list_cost * units,
            )
            granted.append(
                {
                    "id": reservation.id,
                    "owner": self.owner,
                    "expires_at": now + ask.ttl_s,
                    "requests": reservation.requests,
                    "tokens": reservation.tokens,
                    "cost": reservation.cost,
                    "rows": stored_rows,
                }
            )
            out.append(reservation)
        self._add(conn, adds)
        if granted:
            conn.execute(_INSERT_RESERVATIONS, granted)
        return out

    def _release(self, conn: Connection, items: Sequence[Release]) -> None:
        # Only a live reservation gives anything back: an expired one was charged at what it held.
        stored = dict(conn.execute(_LIVE_RESERVATIONS, {"ids": [r.reservation.id for r in items]}).all())
        items = [r for r in items if r.reservation.id in stored]
        if not items:
            return
        adds: dict[_Key, list[float]] = {}
        shrunk = []
        for r in items:
            kept_rows = []
            for row in stored[r.reservation.id]:
                scope, bucket_s, start = row[0], int(row[1]), int(row[2])
                cost = cost_in(scope, r.cost, r.list_cost)
                add = adds.setdefault((scope, bucket_s, start), [0.0] * 6)
                add[3] -= r.requests
                add[4] -= r.tokens
                add[5] -= cost
                kept_rows.append([scope, bucket_s, start, (row[3] if len(row) > 3 else r.reservation.cost) - cost])
            shrunk.append({"rid": r.reservation.id, "r": r.requests, "t": r.tokens, "c": r.cost, "kept": kept_rows})
        conn.execute(_SHRINK_RESERVATION, shrunk)
        self._add(conn, adds)

    def _settle(self, conn: Connection, items: Sequence[Settlement]) -> None:
        # Removing the rows says which were still live (one statement): an expired one was already charged.
        live = set(conn.execute(_DELETE_RESERVATIONS_RETURNING, {"ids": [s.reservation.id for s in items]}).scalars())
        adds: dict[_Key, list[float]] = {}
        for s in items:
            r = s.reservation
            for row in r.rows:
                cost, reserved = cost_in(row[0], s.cost, s.list_cost), cost_in(row[0], r.cost, r.list_cost)
                if r.id in live:
                    delta = [s.requests, s.tokens, cost, -r.requests, -r.tokens, -reserved]
                else:
                    extra = (s.requests - r.requests, s.tokens - r.tokens, cost - reserved)
                    delta = [max(0.0, x) for x in extra] + [0.0, 0.0, 0.0]
                add = adds.setdefault(row, [0.0] * 6)
                for i, value in enumerate(delta):
                    add[i] += value
        self._add(conn, adds)

    def expire(self) -> int:
        """Charge and remove reservations past their time to live; returns how many."""
        with self.engine.begin() as conn:
            return self._expire(conn, self._locked_now(conn))

    def usage(self, scope: str, window: Window) -> tuple[float, float, float, float, float, float]:
        """(requests, tokens, cost settled, and the same reserved) in `scope` over `window` now."""
        with self.engine.connect() as conn:
            now = self._now(conn)
            _, first = window.first_bucket(now)
            return self._window_sums(conn, scope, window, first)

    def in_flight(self) -> int:
        """Reservations not settled or expired yet, of every process."""
        with self.engine.connect() as conn:
            return len(conn.execute(select(SharedReservation.id)).all())

    # --- blocks and circuits ----------------------------------------------------------------------

    def set_block(self, scope: str, seconds: float, reason: str) -> None:
        """Keep `scope` out for `seconds` from now (store clock) for every process; a longer block stays."""
        with self.engine.begin() as conn:
            until = self._locked_now(conn) + seconds
            current = conn.execute(select(SharedBlock.until).where(SharedBlock.scope == scope)).scalar()
            if current is None:
                conn.execute(
                    SharedBlock.__table__.insert(),
                    {"scope": scope, "until": until, "reason": reason[:300], "set_by": self.owner},
                )
            elif current < until:
                conn.execute(
                    SharedBlock.__table__.update()
                    .where(SharedBlock.scope == scope)
                    .values(until=until, reason=reason[:300], set_by=self.owner)
                )

    def set_circuit_open(self, provider_id: str, seconds: float) -> None:
        """Open `provider_id`'s circuit for every process for `seconds` from now (store clock)."""
        with self.engine.begin() as conn:
            until = self._locked_now(conn) + seconds
            conn.execute(delete(SharedCircuit).where(SharedCircuit.provider_id == provider_id))
            conn.execute(
                SharedCircuit.__table__.insert(),
                {"provider_id": provider_id, "open_until": until, "set_by": self.owner},
            )

    def claim_probe(self, provider_id: str, hold_s: float) -> float:
        """Claim the probe of `provider_id`'s half-open circuit for every process: 0.0 when this process may
        send it (the shared circuit then reads open to the others for `hold_s`, the probe's longest time), else
        the seconds another process's open circuit or probe has left."""
        with self.engine.begin() as conn:
            now = self._locked_now(conn)
            row = conn.execute(
                select(SharedCircuit.open_until, SharedCircuit.set_by).where(SharedCircuit.provider_id == provider_id)
            ).first()
            if row is not None and row.open_until > now and row.set_by != self.owner:
                return float(row.open_until - now)
            conn.execute(delete(SharedCircuit).where(SharedCircuit.provider_id == provider_id))
            conn.execute(
                SharedCircuit.__table__.insert(),
                {"provider_id": provider_id, "open_until": now + hold_s, "set_by": self.owner},
            )
            return 0.0

    def close_circuit(self, provider_id: str) -> None:
        """This process's probe succeeded: the shared circuit it held open closes (one another process opened
        meanwhile stays)."""
        with self.engine.begin() as conn:
            self._locked_now(conn)
            conn.execute(
                delete(SharedCircuit).where(
                    SharedCircuit.provider_id == provider_id, SharedCircuit.set_by == self.owner
                )
            )

    def state(self, resets_after: int | None = None) -> SharedState:
        """Blocks and open circuits in force now, and the resets by hand recorded after event id `resets_after`
        (None: none, only the newest event id, to start from)."""
        with self.engine.connect() as conn:
            now = self._now(conn)
            blocks = {
                scope: (until, reason)
                for scope, until, reason in conn.execute(
                    select(SharedBlock.scope, SharedBlock.until, SharedBlock.reason).where(SharedBlock.until > now)
                )
            }
            open_circuits = conn.execute(
                select(SharedCircuit.provider_id, SharedCircuit.open_until, SharedCircuit.set_by).where(
                    SharedCircuit.open_until > now
                )
            ).all()
            circuits = {provider_id: until for provider_id, until, _ in open_circuits}
            setters = {provider_id: set_by for provider_id, _, set_by in open_circuits}
            e = ProviderEvent
            if resets_after is None:
                last = conn.execute(select(func.max(e.id))).scalar() or 0
                resets: tuple[tuple[str, str | None], ...] = ()
            else:
                rows = conn.execute(
                    select(e.id, e.provider_id, e.subscription)
                    .where(e.id > resets_after, e.kind == RESET_EVENT)
                    .order_by(e.id)
                ).all()
                last = rows[-1][0] if rows else resets_after
                resets = tuple((provider_id, subscription) for _, provider_id, subscription in rows)
        return SharedState(
            now=now, blocks=blocks, circuits=circuits, circuit_setters=setters, resets=resets, last_event_id=last
        )

    def reset(self, scopes: Sequence[str], provider_id: str | None) -> None:
        """Clear blocks and usage windows of `scopes` (and the circuit of `provider_id`): a reset by hand. Calls in
        flight keep their reservations; their settlement adds only what they really used."""
        with self.engine.begin() as conn:
            self._locked_now(conn)
            for scope in scopes:
                conn.execute(delete(SharedBlock).where(SharedBlock.scope == scope))
                conn.execute(
                    SharedCounter.__table__.update()
                    .where(SharedCounter.scope == scope)
                    .values(requests=0.0, tokens=0.0, cost=0.0)
                )
            if provider_id is not None:
                conn.execute(delete(SharedCircuit).where(SharedCircuit.provider_id == provider_id))

    def prune(self, older_than_s: float = 2 * 86_400) -> None:
        """Drop counter buckets no window reaches any more (a run's budget bucket stays)."""
        with self.engine.begin() as conn:
            now = self._locked_now(conn)
            conn.execute(
                delete(SharedCounter).where(
                    SharedCounter.bucket_s > 0, SharedCounter.bucket_start < int(now - older_than_s)
                )
            )
            conn.execute(delete(SharedBlock).where(SharedBlock.until < now))
            conn.execute(delete(SharedCircuit).where(SharedCircuit.open_until < now))

    def describe_failure(self, exc: BaseException) -> str:
        """One line naming the store and why it failed (the reason routing gives for refusing calls)."""
        where = shown_url(self.engine.url.render_as_string(hide_password=False))
        return f"{STORE_UNAVAILABLE} (the ledger at {where}) is unavailable: {database_reason(exc)}"

    # --- internals --------------------------------------------------------------------------------

    @property
    def injected_clock(self) -> StoreClock | None:
        """The clock a test injected, None when the database's is used."""
        return self._clock

    def now(self) -> float:
        """The store's clock: the database's (or the injected one), in seconds since the epoch."""
        with self.engine.connect() as conn:
            return self._now(conn)

    def _now(self, conn: Connection) -> float:
        if self._clock is not None:
            return self._clock()
        # SQLite's is the machine's clock: SQLite serves the processes of one machine.
        return float(conn.execute(self._clock_sql).scalar_one())

    def _locked_now(self, conn: Connection) -> float:
        """Take the store's lock (the first statement of every change) and read its clock."""
        now = float(conn.execute(self._lock_clock).scalar_one())
        return self._clock() if self._clock is not None else now

    def _sums(
        self, conn: Connection, sums: dict[tuple[str, int], list[float]], check: LimitCheck, now: float
    ) -> list[float]:
        key = (check.scope, check.window.bucket_s)
        window_sums = sums.get(key)
        if window_sums is None:
            _, first = check.window.first_bucket(now)
            window_sums = sums[key] = list(self._window_sums(conn, check.scope, check.window, first))
        return window_sums

    @staticmethod
    def _all_sums(conn: Connection, asks: Sequence[ReservationAsk], now: float) -> dict[tuple[str, int], list[float]]:
        """Every window the asks need, read in one statement."""
        windows: dict[tuple[str, int], int] = {}
        for ask in asks:
            for check in ask.checks:
                windows.setdefault((check.scope, check.window.bucket_s), check.window.first_bucket(now)[1])
        if not windows:
            return {}
        keys = list(windows)
        params: dict[str, object] = {}
        for i, (scope, bucket_s) in enumerate(keys):
            params[f"s{i}"], params[f"b{i}"], params[f"f{i}"] = scope, bucket_s, windows[(scope, bucket_s)]
        rows = conn.execute(_sums_statement(len(keys)), params).all()
        return {keys[int(row[0])]: [float(v) for v in row[1:]] for row in rows}

    @staticmethod
    def _window_sums(conn: Connection, scope: str, window: Window, first: int) -> _Sums:
        row = conn.execute(_sums_statement(1), {"s0": scope, "b0": window.bucket_s, "f0": first}).one()
        return tuple(float(v) for v in row[1:])  # type: ignore[return-value]

    @staticmethod
    def _add(conn: Connection, adds: dict[_Key, list[float]]) -> None:
        if not adds:
            return
        conn.execute(
            _ADD,
            [
                {
                    "scope": scope,
                    "bucket_s": bucket_s,
                    "bucket_start": start,
                    "r": a[0],
                    "t": a[1],
                    "c": a[2],
                    "rr": a[3],
                    "rt": a[4],
                    "rc": a[5],
                }
                for (scope, bucket_s, start), a in sorted(adds.items())
            ],
        )

    def _expire(self, conn: Connection, now: float) -> int:
        expired = conn.execute(_EXPIRED, {"now": now}).all()
        if not expired:
            return 0
        adds: dict[_Key, list[float]] = {}
        for _, requests, tokens, cost, rows in expired:
            for row in rows:
                add = adds.setdefault((row[0], int(row[1]), int(row[2])), [0.0] * 6)
                row_cost = row[3] if len(row) > 3 else cost  # what was reserved there (list price or charge)
                # Charged at the estimate: the call may have been made and paid.
                add[0] += requests
                add[1] += tokens
                add[2] += row_cost
                add[3] -= requests
                add[4] -= tokens
                add[5] -= row_cost
        self._add(conn, adds)
        conn.execute(_DELETE_RESERVATIONS, {"ids": [row[0] for row in expired]})
        return len(expired)


@functools.cache
def _sums_statement(n: int) -> TextClause:
    """One row per window (its position first), for `n` windows, as one statement."""
    return text(
        " UNION ALL ".join(
            f"SELECT {i}, {_SUM_COLUMNS} FROM shared_counters "
            f"WHERE scope = :s{i} AND bucket_s = :b{i} AND bucket_start >= :f{i}"
            for i in range(n)
        )
    )


__all__ = [
    "FOREVER",
    "LEASE_SHARE",
    "RESET_EVENT",
    "STORE_UNAVAILABLE",
    "UTC_DAY",
    "LimitCheck",
    "LimitRefusal",
    "LimitStore",
    "Release",
    "Reservation",
    "ReservationAsk",
    "Settlement",
    "SharedState",
    "StoreClock",
    "Window",
    "cost_in",
    "is_budget_scope",
    "sliding",
]
