"""Per-provider circuit breaker: stop sending work to a provider that keeps failing, probe it again later.

    unknown ──success──> closed ──failure_threshold consecutive failures──> open
       │                   └──────error rate >= threshold over window───────> open
       └──failure_threshold consecutive failures──> open
    open ──cooldown_s elapsed (seen lazily on read)──> half_open
    half_open ──success──> closed          half_open ──failure──> open (new cooldown)

While `unknown` or `half_open` only `probe_in_flight` calls run at once (in `unknown`, also no more than
the failures still needed to open), so a burst of ready tasks cannot all land on a provider that may be dead
before its circuit has a chance to open. The router queues the other tasks until a probe settles; it does
not fail them.

Only failures that are the provider's fault count. The caller does not call `fail()` for errors that are
its own fault (`bad_request`, `budget_exceeded`, `cancelled`); it calls `abandon()` instead, which releases
the in-flight slot without recording an outcome.

Results that arrive while the circuit is open (calls started before it opened) only release their slot:
the cooldown stands, and the half-open probes decide whether the provider is back.

Not thread-safe by design: the engine drives every breaker from its one event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class CircuitSettings(BaseModel):
    """When a provider's circuit opens and how it is probed again; part of the routing config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_threshold: int = Field(default=5, ge=1)
    error_rate_threshold: float = Field(default=0.5, gt=0, le=1)
    window: int = Field(default=20, ge=1)
    min_calls: int = Field(default=10, ge=1)
    cooldown_s: float = Field(default=30.0, ge=0)
    probe_in_flight: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _min_calls_fit_window(self) -> Self:
        # The error rate is computed over at most `window` calls, so a larger minimum would never be reached.
        if self.min_calls > self.window:
            raise ValueError(f"min_calls ({self.min_calls}) must not exceed window ({self.window})")
        return self


class CircuitState(StrEnum):
    UNKNOWN = "unknown"
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


OnChange = Callable[[CircuitState, CircuitState], None]


class CircuitBreaker:
    """The circuit of one provider. Call `admits()`, then `begin()`, then one of `succeed()`/`fail()`/`abandon()`."""

    __slots__ = (
        "_clock",
        "_consecutive",
        "_cooldown_s",
        "_failure_threshold",
        "_failures_in_window",
        "_in_flight",
        "_min_calls",
        "_on_change",
        "_open_until",
        "_probe_in_flight",
        "_rate_threshold",
        "_recorded",
        "_ring",
        "_ring_pos",
        "_state",
        "settings",
    )

    def __init__(
        self,
        settings: CircuitSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_change: OnChange | None = None,
    ) -> None:
        self.settings = settings if settings is not None else CircuitSettings()
        # Copied out of the pydantic model: these are read on every decision.
        self._failure_threshold = self.settings.failure_threshold
        self._rate_threshold = self.settings.error_rate_threshold
        self._min_calls = self.settings.min_calls
        self._cooldown_s = self.settings.cooldown_s
        self._probe_in_flight = self.settings.probe_in_flight
        self._clock = clock
        self._on_change = on_change
        self._state = CircuitState.UNKNOWN
        self._open_until: float | None = None
        self._in_flight = 0
        self._consecutive = 0
        # Ring buffer of the last `window` outcomes (True = failure) with a running failure count: O(1) per call.
        self._ring = [False] * self.settings.window
        self._ring_pos = 0
        self._recorded = 0
        self._failures_in_window = 0

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit reads as half_open once its cooldown has elapsed."""
        until = self._open_until
        if until is not None and self._clock() >= until:
            self._transition(CircuitState.HALF_OPEN)
        return self._state

    @property
    def open_until(self) -> float | None:
        """Clock time at which an open circuit lets probes through; None unless open."""
        return self._open_until if self.state is CircuitState.OPEN else None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def error_rate(self) -> float | None:
        """Failed fraction of the calls in the breaker's window (None before any call counted)."""
        return self._failures_in_window / self._recorded if self._recorded else None

    def admits(self) -> bool:
        """Whether a new call may start now (False while open, or while the probe slots are taken)."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN:
            return False
        if self._in_flight >= self._probe_in_flight:
            return False
        # Unknown: never more probes out than failures still needed to open, so a provider that is dead from
        # the start gets at most `failure_threshold` calls however many tasks are waiting for it.
        return state is CircuitState.HALF_OPEN or self._consecutive + self._in_flight < self._failure_threshold

    @property
    def probing(self) -> bool:
        """Whether the circuit is neither closed nor open: calls wait for a probe slot instead of being refused."""
        state = self.state
        return state is CircuitState.UNKNOWN or state is CircuitState.HALF_OPEN

    def restore(self, recent: Sequence[tuple[bool, float]]) -> None:
        """Start from what earlier runs saw: `recent` is (failed, seconds ago) of the provider's last calls,
        newest first, only outcomes that count for the circuit.

        Last call succeeded: closed, so a new run does not funnel its first burst through the probes again.
        The last `failure_threshold` calls failed: open for the rest of the cooldown, half-open after it.
        Otherwise unknown, counting the failures since the last success (fewer probes go out before it
        opens). Quiet: these transitions were reported when they happened.
        """
        if not recent or self._state is not CircuitState.UNKNOWN:
            return
        failures = next((i for i, (failed, _) in enumerate(recent) if not failed), len(recent))
        if failures == 0:
            self._state = CircuitState.CLOSED
        elif failures < self._failure_threshold:
            self._consecutive = failures
        elif recent[0][1] < self._cooldown_s:
            self._state = CircuitState.OPEN
            self._open_until = self._clock() + self._cooldown_s - recent[0][1]
        else:
            self._state = CircuitState.HALF_OPEN

    def hold_open(self, seconds: float) -> None:
        """Open for `seconds` because another process opened it; quiet, since that process reported it."""
        if seconds <= 0 or self.state is CircuitState.OPEN:
            return
        self._state = CircuitState.OPEN
        self._open_until = self._clock() + seconds

    def reset(self) -> None:
        """Closed by hand (`switchboard providers reset`), with a fresh window; quiet: the reset is recorded."""
        self._consecutive = 0
        self._ring = [False] * len(self._ring)
        self._ring_pos = self._recorded = self._failures_in_window = 0
        self._open_until = None
        self._state = CircuitState.CLOSED

    def begin(self) -> None:
        """Count a call as in flight; call right after `admits()` returned True."""
        self._in_flight += 1

    def abandon(self) -> None:
        """Release a call that ended without a verdict on the provider (cancelled, caller's fault)."""
        self._release()

    def succeed(self) -> None:
        self._release()
        state = self.state
        if state is CircuitState.OPEN:
            return
        self._consecutive = 0
        if state is CircuitState.CLOSED:
            self._record(failed=False)
        else:
            self._close()

    def fail(self) -> None:
        self._release()
        state = self.state
        if state is CircuitState.OPEN:
            return
        if state is CircuitState.HALF_OPEN:
            self._open()
            return
        self._consecutive += 1
        if state is CircuitState.CLOSED:
            self._record(failed=True)
            if self._consecutive >= self._failure_threshold or self._rate_exceeded():
                self._open()
        elif self._consecutive >= self._failure_threshold:
            self._open()

    def _release(self) -> None:
        # Tolerate an unmatched release rather than letting the count go negative and over-admit later.
        if self._in_flight > 0:
            self._in_flight -= 1

    def _record(self, *, failed: bool) -> None:
        ring = self._ring
        pos = self._ring_pos
        if self._recorded == len(ring):
            self._failures_in_window -= ring[pos]
        else:
            self._recorded += 1
        ring[pos] = failed
        self._failures_in_window += failed
        self._ring_pos = (pos + 1) % len(ring)

    def _rate_exceeded(self) -> bool:
        return self._recorded >= self._min_calls and self._failures_in_window >= self._rate_threshold * self._recorded

    def _open(self) -> None:
        self._open_until = self._clock() + self._cooldown_s
        self._transition(CircuitState.OPEN)

    def _close(self) -> None:
        # A fresh window: failures from before the outage must not re-open a circuit that just recovered.
        self._consecutive = 0
        self._ring = [False] * len(self._ring)
        self._ring_pos = 0
        self._recorded = 0
        self._failures_in_window = 0
        self._transition(CircuitState.CLOSED)

    def _transition(self, new: CircuitState) -> None:
        old = self._state
        if new is CircuitState.HALF_OPEN:
            self._consecutive = 0
        if new is not CircuitState.OPEN:
            self._open_until = None
        # State first, callback second: an observer that raises still leaves the breaker consistent.
        self._state = new
        if self._on_change is not None and old is not new:
            self._on_change(old, new)

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self._state.value}, in_flight={self._in_flight})"
