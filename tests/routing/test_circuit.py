"""The circuit breaker's states and transitions, driven by a fake clock."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from routing.circuit import CircuitBreaker, CircuitSettings, CircuitState


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breaker(
    clock: FakeClock, changes: list[tuple[CircuitState, CircuitState]] | None = None, **settings: float
) -> CircuitBreaker:
    on_change = None if changes is None else (lambda old, new: changes.append((old, new)))
    return CircuitBreaker(CircuitSettings(**settings), clock=clock, on_change=on_change)


def _call(breaker: CircuitBreaker, ok: bool) -> None:
    assert breaker.admits()
    breaker.begin()
    if ok:
        breaker.succeed()
    else:
        breaker.fail()


def _close(breaker: CircuitBreaker) -> None:
    _call(breaker, ok=True)
    assert breaker.state is CircuitState.CLOSED


def test_new_breaker_is_unknown_and_admits_only_probe_in_flight_calls() -> None:
    breaker = _breaker(FakeClock(), probe_in_flight=2)
    assert breaker.state is CircuitState.UNKNOWN
    assert breaker.admits()
    breaker.begin()
    assert breaker.admits()
    breaker.begin()
    assert not breaker.admits()
    breaker.abandon()
    assert breaker.admits()


def test_first_success_closes_and_closed_admits_without_limit() -> None:
    changes: list[tuple[CircuitState, CircuitState]] = []
    breaker = _breaker(FakeClock(), changes, probe_in_flight=1)
    _close(breaker)
    for _ in range(10):
        assert breaker.admits()
        breaker.begin()
    assert breaker.in_flight == 10
    assert changes == [(CircuitState.UNKNOWN, CircuitState.CLOSED)]


def test_unknown_opens_after_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failure_threshold=3, cooldown_s=30)
    _call(breaker, ok=False)
    _call(breaker, ok=False)
    assert breaker.state is CircuitState.UNKNOWN
    _call(breaker, ok=False)
    assert breaker.state is CircuitState.OPEN
    assert breaker.open_until == pytest.approx(1030.0)
    assert not breaker.admits()


def test_closed_opens_after_failure_threshold_consecutive_failures() -> None:
    breaker = _breaker(FakeClock(), failure_threshold=3, min_calls=10)
    _close(breaker)
    _call(breaker, ok=False)
    _call(breaker, ok=False)
    _call(breaker, ok=True)  # a success resets the consecutive count
    _call(breaker, ok=False)
    _call(breaker, ok=False)
    assert breaker.state is CircuitState.CLOSED
    _call(breaker, ok=False)
    assert breaker.state is CircuitState.OPEN


def test_closed_opens_on_error_rate_only_once_min_calls_recorded() -> None:
    breaker = _breaker(FakeClock(), failure_threshold=100, error_rate_threshold=0.5, window=10, min_calls=6)
    _close(breaker)
    # Alternate failure/success: a 50% error rate that never has two failures in a row.
    for i in range(5):
        _call(breaker, ok=i % 2 == 1)
    assert breaker.state is CircuitState.CLOSED  # 5 calls recorded, below min_calls
    _call(breaker, ok=False)  # (f, s, f, s, f, f): 4 of 6 failing
    assert breaker.state is CircuitState.OPEN


def test_error_rate_counts_only_the_recent_window() -> None:
    breaker = _breaker(FakeClock(), failure_threshold=100, error_rate_threshold=0.5, window=4, min_calls=4)
    _close(breaker)
    _call(breaker, ok=False)
    for _ in range(3):
        _call(breaker, ok=True)
    # Window now (f, s, s, s); the oldest failure slides out, so a new one keeps the rate at 1/4.
    _call(breaker, ok=False)
    assert breaker.state is CircuitState.CLOSED
    _call(breaker, ok=False)  # (s, s, f, f) = 50%
    assert breaker.state is CircuitState.OPEN


def test_open_becomes_half_open_lazily_after_cooldown() -> None:
    clock = FakeClock()
    changes: list[tuple[CircuitState, CircuitState]] = []
    breaker = _breaker(clock, changes, failure_threshold=1, cooldown_s=30)
    _call(breaker, ok=False)
    clock.now += 29.9
    assert breaker.state is CircuitState.OPEN
    clock.now += 0.1
    assert breaker.open_until is None
    assert breaker.state is CircuitState.HALF_OPEN
    assert changes == [
        (CircuitState.UNKNOWN, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
    ]


def test_half_open_admits_probe_in_flight_calls_and_success_closes() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failure_threshold=1, cooldown_s=5, probe_in_flight=2)
    _call(breaker, ok=False)
    clock.now += 5
    for _ in range(2):
        assert breaker.admits()
        breaker.begin()
    assert not breaker.admits()
    breaker.succeed()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.admits()


def test_half_open_failure_reopens_with_a_new_cooldown() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failure_threshold=5, cooldown_s=10)
    for _ in range(5):
        _call(breaker, ok=False)
    clock.now += 10
    assert breaker.state is CircuitState.HALF_OPEN
    _call(breaker, ok=False)  # one failed probe is enough
    assert breaker.state is CircuitState.OPEN
    assert breaker.open_until == pytest.approx(clock.now + 10)


def test_results_arriving_while_open_only_release_their_slot() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failure_threshold=1, cooldown_s=10)
    _close(breaker)
    breaker.begin()
    breaker.begin()
    breaker.fail()
    assert breaker.state is CircuitState.OPEN
    breaker.succeed()  # a call that started before the circuit opened
    assert breaker.state is CircuitState.OPEN
    assert breaker.in_flight == 0


def test_recovery_starts_a_fresh_window() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failure_threshold=3, window=4, min_calls=4)
    _close(breaker)
    _call(breaker, ok=True)
    for _ in range(3):
        _call(breaker, ok=False)
    clock.now += 30
    _close(breaker)
    # Old failures would make this window 3/4 failing; after recovery it is 1/1 and below min_calls.
    _call(breaker, ok=False)
    assert breaker.state is CircuitState.CLOSED


def test_abandon_releases_without_counting_a_failure() -> None:
    breaker = _breaker(FakeClock(), failure_threshold=1)
    for _ in range(5):
        assert breaker.admits()
        breaker.begin()
        breaker.abandon()
    assert breaker.state is CircuitState.UNKNOWN
    assert breaker.in_flight == 0


def test_unmatched_release_does_not_go_negative() -> None:
    breaker = _breaker(FakeClock(), probe_in_flight=1)
    breaker.abandon()
    breaker.begin()
    assert not breaker.admits()


def test_settings_reject_unknown_keys_and_min_calls_beyond_window() -> None:
    with pytest.raises(ValidationError):
        CircuitSettings(failure_treshold=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        CircuitSettings(window=5, min_calls=10)
    with pytest.raises(ValidationError):
        CircuitSettings().failure_threshold = 1  # type: ignore[misc]


def test_unknown_never_has_more_probes_out_than_failures_still_needed_to_open() -> None:
    breaker = _breaker(FakeClock(), failure_threshold=3, probe_in_flight=2)
    calls = 0
    while breaker.state is CircuitState.UNKNOWN:
        while breaker.admits():
            breaker.begin()
            calls += 1
        breaker.fail()  # every probe of a dead provider fails
    assert breaker.state is CircuitState.OPEN
    assert calls == 3  # failure_threshold, although two probes were allowed in flight at a time


def test_restore_from_earlier_runs_closes_opens_or_counts_failures() -> None:
    clock = FakeClock()
    up = _breaker(clock)
    up.restore([(False, 30.0), (True, 40.0)])
    assert up.state is CircuitState.CLOSED and up.admits()

    changes: list[tuple[CircuitState, CircuitState]] = []
    down = _breaker(clock, changes, failure_threshold=3, cooldown_s=30)
    down.restore([(True, 10.0), (True, 12.0), (True, 15.0), (False, 100.0)])
    assert down.state is CircuitState.OPEN and not down.admits()
    assert down.open_until == pytest.approx(clock.now + 20)  # the rest of the cooldown of the newest failure
    clock.now += 20
    assert down.state is CircuitState.HALF_OPEN
    assert changes == [(CircuitState.OPEN, CircuitState.HALF_OPEN)]  # restoring itself reported nothing

    long_down = _breaker(clock, failure_threshold=3, cooldown_s=30)
    long_down.restore([(True, 50.0), (True, 60.0), (True, 70.0)])
    assert long_down.state is CircuitState.HALF_OPEN

    shaky = _breaker(clock, failure_threshold=4, probe_in_flight=3)
    shaky.restore([(True, 5.0), (True, 7.0), (False, 9.0)])
    assert shaky.state is CircuitState.UNKNOWN
    shaky.begin()
    shaky.begin()
    assert not shaky.admits()  # two failures remembered: two more probes could open it, so no third
    shaky.fail()
    shaky.fail()
    assert shaky.state is CircuitState.OPEN

    fresh = _breaker(clock)
    fresh.restore([])
    assert fresh.state is CircuitState.UNKNOWN
