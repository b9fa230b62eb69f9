"""The limits every routing process shares, kept in the ledger's own database (migration 0005).

    reserve   before a call: for each limit it must fit (a provider's or subscription's window, a run, day or team
              budget), settled usage + reservations in flight + this call <= the limit; if every one fits, the
              call's estimate is added to the counters as reserved and a reservation row remembers where
    settle    after it: the estimate leaves `reserved_*`, the real usage goes into the settled columns
    expire    a reservation whose process died (never settled within its time to live) is charged at its estimate
              and removed: the call may have been paid, so it is never refunded, and nothing is counted twice

Every change runs in one transaction that first updates the single `shared_lock` row: on PostgreSQL that row
lock serializes the writers of every process and host (READ COMMITTED: each statement after it sees all that
committed before), on SQLite it takes the database's write lock, which serializes the processes of one
machine. An existing, proven mechanism, no protocol of our own. Many reservations (or settlements) share one
transaction, so the lock is taken once per batch, not per call.

Windows are buckets on the store's clock (`now()` reads the database's unless a test injects one): a sliding
window of span S counts the buckets of S/60 seconds that cover at least the last S seconds (up to one bucket more:
it errs on the side of the limit); a UTC day is one bucket starting at midnight; a run's budget one bucket for ever.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, text

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
    """A call about to go out: the limits it must fit and its estimate."""

    checks: tuple[LimitCheck, ...]
    requests: float
    tokens: float
    cost: float
    ttl_s: float  # settled by then, or charged at the estimate


@dataclass(frozen=True, slots=True)
class Reservation:
    """A granted ask: what was reserved where (settle it with the real usage)."""

    id: str
    rows: tuple[tuple[str, int, int], ...]
    requests: float
    tokens: float
    cost: float


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
class Settlement:
    """A finished call's real usage for its reservation."""

    reservation: Reservation
    requests: float
    tokens: float
    cost: float


@dataclass(frozen=True, slots=True)
class SharedState:
    """Blocks and open circuits in force now, and the store's clock when read."""

    now: float
    blocks: dict[str, tuple[float, str]] = field(default_factory=dict)  # scope -> (until, reason)
    circuits: dict[str, float] = field(default_factory=dict)  # provider id -> open until
    resets: tuple[tuple[str, str | None], ...] = ()  # (provider id, subscription) reset by hand, oldest first
    last_event_id: int = 0


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

    # --- reservations -----------------------------------------------------------------------------

    def reserve(self, asks: Sequence[ReservationAsk]) -> list[Reservation | LimitRefusal]:
        """Grant or refuse each ask in order, in one transaction (an ask sees those granted before it)."""
        with self.engine.begin() as conn:
            now = self._locked_now(conn)
            self._expire(conn, now)
            # (scope, bucket size) -> its window's sums in this transaction, updated as asks are granted.
            sums: dict[tuple[str, int], list[float]] = {}
            adds: dict[_Key, list[float]] = {}
            granted: list[dict[str, object]] = []
            out: list[Reservation | LimitRefusal] = []
            for ask in asks:
                amounts = {"requests": ask.requests, "tokens": ask.tokens, "cost": ask.cost}
                refusal = None
                for check in ask.checks:
                    window_sums = self._sums(conn, sums, check, now)
                    index = _MEASURES.index(check.measure)
                    settled, reserved = window_sums[index], window_sums[3 + index]
                    amount = amounts[check.measure]
                    if settled + reserved + amount > check.limit + 1e-9:
                        refusal = LimitRefusal(check, settled, reserved, amount)
                        break
                if refusal is not None:
                    out.append(refusal)
                    continue
                rows: list[_Key] = []
                for check in ask.checks:
                    row = (check.scope, check.window.bucket_s, check.window.first_bucket(now)[0])
                    if row in rows:
                        continue  # two limits of one scope over windows of one bucket size share their row
                    rows.append(row)
                    window_sums = sums[(check.scope, check.window.bucket_s)]
                    add = adds.setdefault(row, [0.0] * 6)
                    for i, amount in enumerate((ask.requests, ask.tokens, ask.cost)):
                        window_sums[3 + i] += amount
                        add[3 + i] += amount
                reservation = Reservation(uuid.uuid4().hex, tuple(rows), ask.requests, ask.tokens, ask.cost)
                granted.append(
                    {
                        "id": reservation.id,
                        "owner": self.owner,
                        "expires_at": now + ask.ttl_s,
                        "requests": ask.requests,
                        "tokens": ask.tokens,
                        "cost": ask.cost,
                        "rows": [list(r) for r in rows],
                    }
                )
                out.append(reservation)
            self._add(conn, adds)
            if granted:
                conn.execute(SharedReservation.__table__.insert(), granted)
        return out

    def settle(self, settlements: Iterable[Settlement]) -> None:
        """Move reservations' estimates out of `reserved_*` and their real usage in, in one transaction. A
        reservation that expired meanwhile was charged at its estimate: only usage above it is added."""
        items = list(settlements)
        if not items:
            return
        with self.engine.begin() as conn:
            self._locked_now(conn)
            ids = [s.reservation.id for s in items]
            live = set(
                conn.execute(
                    select(SharedReservation.id).where(SharedReservation.id.in_(bindparam("ids", expanding=True))),
                    {"ids": ids},
                ).scalars()
            )
            adds: dict[_Key, list[float]] = {}
            for s in items:
                r = s.reservation
                if r.id in live:
                    delta = [s.requests, s.tokens, s.cost, -r.requests, -r.tokens, -r.cost]
                else:
                    extra = (s.requests - r.requests, s.tokens - r.tokens, s.cost - r.cost)
                    delta = [max(0.0, x) for x in extra] + [0.0, 0.0, 0.0]
                for row in r.rows:
                    add = adds.setdefault(row, [0.0] * 6)
                    for i, value in enumerate(delta):
                        add[i] += value
            self._add(conn, adds)
            if live:
                conn.execute(
                    delete(SharedReservation).where(SharedReservation.id.in_(bindparam("ids", expanding=True))),
                    {"ids": list(live)},
                )

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

    def close_circuit(self, provider_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(SharedCircuit).where(SharedCircuit.provider_id == provider_id))

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
            circuits = dict(
                conn.execute(
                    select(SharedCircuit.provider_id, SharedCircuit.open_until).where(SharedCircuit.open_until > now)
                ).all()
            )
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
        return SharedState(now=now, blocks=blocks, circuits=circuits, resets=resets, last_event_id=last)

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

    def now(self) -> float:
        """The store's clock: the database's (or the injected one), in seconds since the epoch."""
        with self.engine.connect() as conn:
            return self._now(conn)

    def _now(self, conn: Connection) -> float:
        if self._clock is not None:
            return self._clock()
        if self._sqlite:  # the machine's clock: SQLite serves the processes of one machine
            return float(conn.execute(text("SELECT (julianday('now') - 2440587.5) * 86400.0")).scalar_one())
        return float(conn.execute(text("SELECT extract(epoch from clock_timestamp())")).scalar_one())

    def _locked_now(self, conn: Connection) -> float:
        """Take the store's lock (the first statement of every change), then read its clock."""
        conn.execute(text("UPDATE shared_lock SET ticks = ticks + 1 WHERE id = 1"))
        return self._now(conn)

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
    def _window_sums(conn: Connection, scope: str, window: Window, first: int) -> _Sums:
        c = SharedCounter
        row = conn.execute(
            select(
                *(
                    _total(col)
                    for col in (
                        c.requests,
                        c.tokens,
                        c.cost,
                        c.reserved_requests,
                        c.reserved_tokens,
                        c.reserved_cost,
                    )
                )
            ).where(c.scope == scope, c.bucket_s == window.bucket_s, c.bucket_start >= first)
        ).one()
        return tuple(float(v) for v in row)  # type: ignore[return-value]

    @staticmethod
    def _add(conn: Connection, adds: dict[_Key, list[float]]) -> None:
        if not adds:
            return
        conn.execute(
            text(
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
            ),
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
        r = SharedReservation
        expired = conn.execute(select(r.id, r.requests, r.tokens, r.cost, r.rows).where(r.expires_at < now)).all()
        if not expired:
            return 0
        adds: dict[_Key, list[float]] = {}
        for _, requests, tokens, cost, rows in expired:
            for scope, bucket_s, start in rows:
                add = adds.setdefault((scope, int(bucket_s), int(start)), [0.0] * 6)
                # Charged at the estimate: the call may have been made and paid.
                add[0] += requests
                add[1] += tokens
                add[2] += cost
                add[3] -= requests
                add[4] -= tokens
                add[5] -= cost
        self._add(conn, adds)
        conn.execute(delete(r).where(r.id.in_(bindparam("ids", expanding=True))), {"ids": [row[0] for row in expired]})
        return len(expired)


def _total(column: Any) -> Any:
    return func.coalesce(func.sum(column), 0.0)


__all__ = [
    "FOREVER",
    "RESET_EVENT",
    "STORE_UNAVAILABLE",
    "UTC_DAY",
    "LimitCheck",
    "LimitRefusal",
    "LimitStore",
    "Reservation",
    "ReservationAsk",
    "Settlement",
    "SharedState",
    "StoreClock",
    "Window",
    "sliding",
]
