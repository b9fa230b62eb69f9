"""Why a run stops before its tasks are done, decided in one place: interrupted (Ctrl-C) or cancelled (its flow
run cancelled in Prefect: the UI, `prefect flow-run cancel`, the API, `switchboard cancel`).

Whoever notices a cancel (the flow's watch on its own Prefect state, a worker's kill signal: flows.cancelling)
asks `run_stop(run_id).request(...)`; the first reason wins. From then on the run's nodes start no provider call,
the calls in flight are cancelled (a CLI child's process group killed, HTTP requests closed, each recorded
`cancelled` by the router), and `end_stopped_run` marks what never finished `cancelled` and the run `cancelled`
(or `interrupted`, for a caller stopping a run that way). Both resume on the next run of the same spec.

A stop is per run: only the engine-loop work of that run is cancelled, so one process may run other batches on.
Ctrl-C and SIGTERM of `switchboard run` stop the whole process instead (batches.control: the engine stops, the run
ends `interrupted`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ledger import Ledger, RunStatus, TaskOutcome, TaskStatus
from providers import utc_now
from routing import engine_loop

# How long in-flight calls get to record their cancellation before the unfinished tasks are marked.
STOP_GRACE_S = 5.0
# How long a stop waits for the engine loop to take the cancellation (it is idle within milliseconds).
APPLY_WAIT_S = 1.0


class StopReason(StrEnum):
    INTERRUPTED = "interrupted"  # stopped on purpose, to be resumed (as Ctrl-C does through batches.control)
    CANCELLED = "cancelled"  # the run's flow run was cancelled in Prefect


# A run's status once stopped for each reason.
RUN_STATUS = {StopReason.INTERRUPTED: RunStatus.INTERRUPTED, StopReason.CANCELLED: RunStatus.CANCELLED}


@dataclass(frozen=True, slots=True)
class StopRequest:
    reason: StopReason
    detail: str  # said to the user and recorded as the unfinished tasks' error
    at: datetime  # when this process saw it (UTC)

    @property
    def task_error(self) -> str:
        return f"cancelled ({self.detail})"


class RunStop:
    """Whether and why one run stops, and the engine-loop work to cancel when it does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._request: StopRequest | None = None
        self._work: set[asyncio.Task[object]] = set()
        self._stopped = threading.Event()

    @property
    def request_made(self) -> StopRequest | None:
        return self._request

    def request(self, reason: StopReason, detail: str) -> bool:
        """Stop the run for `reason`; False (nothing changes) when it was already asked to stop.

        Returns once the run's work on the engine loop has been cancelled; the request's `at` is that moment, so
        no provider call of the run starts after it (a call the loop started in between is cancelled at its
        first step and recorded `cancelled`, with a start before `at`).
        """
        with self._lock:
            if self._request is not None:
                return False
            self._request = StopRequest(reason=reason, detail=detail, at=utc_now())  # new work is refused from here
            work = list(self._work)
        self._stopped.set()
        applied = threading.Event()

        def cancel() -> None:
            for task in work:
                task.cancel()
            applied.set()

        engine_loop().loop.call_soon_threadsafe(cancel)
        applied.wait(APPLY_WAIT_S)
        with self._lock:
            self._request = StopRequest(reason=reason, detail=detail, at=utc_now())
        return True

    def wait(self, timeout: float) -> bool:
        """Block until a stop is requested (True) or `timeout` passes (False)."""
        return self._stopped.wait(timeout)

    @contextmanager
    def guarding(self, task: asyncio.Task[object]) -> Iterator[None]:
        """Around a run's work on the engine loop: cancelled by a stop; refused (CancelledError) after one."""
        with self._lock:
            if self._request is not None:
                raise asyncio.CancelledError(self._request.task_error)
            self._work.add(task)
        try:
            yield
        finally:
            with self._lock:
                self._work.discard(task)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the run's cancelled work has unwound (its calls recorded); False if `timeout` passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._work:
                    return True
            time.sleep(0.02)
        return False


_stops: dict[str, RunStop] = {}
_stops_lock = threading.Lock()


def run_stop(run_id: str) -> RunStop:
    """The run's stop in this process (made on first use)."""
    with _stops_lock:
        return _stops.setdefault(run_id, RunStop())


def forget_stop(run_id: str) -> None:
    """Drop the run's stop once the run is over in this process (a resumed run starts with a fresh one)."""
    with _stops_lock:
        _stops.pop(run_id, None)


def end_stopped_run(ledger: Ledger, run_id: str, request: StopRequest) -> RunStatus:
    """After a stop: give in-flight calls a moment to record their cancellation, mark the tasks that never finished
    `cancelled` (they run again when the spec is run again) and end the run `interrupted` or `cancelled`."""
    run_stop(run_id).wait_idle(STOP_GRACE_S)
    states = ledger.task_states(run_id, decisions=False).values()
    unfinished = [s.task_id for s in states if s.status == TaskStatus.PENDING]
    if unfinished:  # one transaction, not one per task
        error = request.task_error
        ledger.finish_tasks(
            run_id, [TaskOutcome(task_id=t, status=TaskStatus.CANCELLED, error=error) for t in unfinished]
        )
    status = RUN_STATUS[request.reason]
    ledger.finish_run(run_id, status)
    return status


__all__ = [
    "RUN_STATUS",
    "STOP_GRACE_S",
    "RunStop",
    "StopReason",
    "StopRequest",
    "end_stopped_run",
    "forget_stop",
    "run_stop",
]
