"""An asyncio event loop on virtual time: a week of routed work runs in seconds, in the same order every time.

`loop.time()` is a number this loop owns. When nothing is ready to run, the loop does not wait for its next
timer: it moves its clock to it. So `asyncio.sleep(300)` returns at once in real time while the clock reads
five minutes later, concurrent tasks interleave as they would in real time (a provider's slots stay taken for
the calls' simulated durations), and the routing engine, given `loop.time` as its clock and `asyncio.sleep`
as its sleep, sees windows, cooldowns and latencies pass as they would have.

Only for work that never waits on real I/O: the selector looks at real file descriptors without blocking (the
loop's own wake-up pipe), and a loop with nothing scheduled and nothing ready fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
# How long (real seconds) the loop waits for a real file descriptor when it has no timer to jump to, before it
# calls the run stuck: nothing in a simulation should get there.
_STUCK_AFTER_S = 5.0


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """A selector that, instead of blocking for `timeout`, advances the loop's virtual clock by it."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only a real event (another thread) could wake the loop
            ready = super().select(_STUCK_AFTER_S)
            if not ready:
                raise RuntimeError("virtual time: nothing is scheduled and nothing is ready (the run is stuck)")
            return ready
        self.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose `time()` is virtual, starting at 0.0."""

    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a fresh `VirtualTimeLoop`."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)
