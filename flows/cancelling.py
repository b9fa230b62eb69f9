"""A batch flow run that stops itself when it is cancelled in Prefect, wherever it runs.

Prefect enforces cancellation only through a worker (PREFECT.md, gotcha 15): a flow run started in this process
(`switchboard run`, `run_batch`) cancelled from the UI, `prefect flow-run cancel` or the API just sits in
Cancelling while its tasks go on. So the flow body watches its own flow run's state (`stop_when_cancelled`,
a read every `POLL_S`) and, once it is Cancelling or Cancelled, stops the run (batches.stopping). On a worker,
the worker's runner also sends the process SIGTERM when a run is cancelled; `sigterm_cancels` tells that kill
apart from any other SIGTERM by the flow run's state and stops the run the same way, so the flow still records
what it did and ends Cancelled instead of dying mid-write. Any other SIGTERM interrupts a run `switchboard run`
started in this process like Ctrl-C (batches.control), else goes to the handler that was there.
"""

from __future__ import annotations

import contextvars
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.objects import StateType

from batches import StopReason, interrupt_handler, run_stop

# Seconds between two reads of the flow run's state: a cancel is seen within about this long.
POLL_S = 1.0
# A read that takes longer is given up (the next one tries again).
READ_TIMEOUT_S = 5.0
CANCEL_DETAIL = "flow run cancelled in Prefect"
CANCELLING = (StateType.CANCELLING, StateType.CANCELLED)
TASK_RUN_LOGGER = "prefect.task_runs"
logger = logging.getLogger("switchboard.cancelling")


def flow_run_cancelling(flow_run_id: UUID | str) -> bool:
    """The flow run is Cancelling or Cancelled in Prefect (False when that cannot be read)."""
    try:
        with get_client(sync_client=True, httpx_settings={"timeout": READ_TIMEOUT_S}) as client:
            state = client.read_flow_run(UUID(str(flow_run_id))).state
    except Exception:
        logger.debug("could not read the state of flow run %s", flow_run_id, exc_info=True)
        return False
    return state is not None and state.type in CANCELLING


@contextmanager
def stop_when_cancelled(run_id: str, flow_run_id: UUID | str, *, poll_s: float = POLL_S) -> Iterator[None]:
    """While inside, a cancel of `flow_run_id` in Prefect stops the run `run_id` within about `poll_s`."""
    stop = run_stop(run_id)
    done = threading.Event()
    task_runs = logging.getLogger(TASK_RUN_LOGGER)
    level = task_runs.level

    def watch() -> None:
        while not done.wait(poll_s):
            if stop.request_made is not None:
                return
            if flow_run_cancelling(flow_run_id):
                if stop.request(StopReason.CANCELLED, CANCEL_DETAIL):
                    quiet_cancelled_task_runs()
                    logger.warning("run %s: %s; stopping provider calls", run_id, CANCEL_DETAIL)
                return

    # A copy of this context, so the thread talks to the same Prefect API as the flow run.
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(watch,), name="switchboard-cancel-watch", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        done.set()  # no join: the thread ends at its next wake-up
        task_runs.setLevel(level)


def quiet_cancelled_task_runs() -> None:
    """Prefect logs every task run that ends Cancelled as an error; after a cancel that is one line per task left,
    and the run's summary says it better. Restored when the flow body ends (stop_when_cancelled)."""
    logging.getLogger(TASK_RUN_LOGGER).setLevel(logging.CRITICAL)


SignalHandler = Callable[[int, FrameType | None], Any] | int | None


@contextmanager
def sigterm_cancels(run_id: str, flow_run_id: UUID | str) -> Iterator[None]:
    """While inside (in the main thread), a SIGTERM that comes with the flow run Cancelling stops the run as a
    cancel and lets the flow finish; any other SIGTERM goes to the handler installed before (Prefect's)."""
    try:
        previous: SignalHandler = signal.getsignal(signal.SIGTERM)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    context = contextvars.copy_context()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop = run_stop(run_id)
        if stop.request_made is not None and stop.request_made.reason == StopReason.CANCELLED:
            return  # already stopping for the cancel: finish recording it
        if context.run(flow_run_cancelling, flow_run_id):
            if stop.request(StopReason.CANCELLED, CANCEL_DETAIL):
                quiet_cancelled_task_runs()
            return
        interrupt = interrupt_handler()
        if interrupt is not None:  # `switchboard run` in this process: a SIGTERM interrupts like Ctrl-C
            interrupt(signum, frame)
        elif callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)

    try:
        signal.signal(signal.SIGTERM, handle)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is handle:
            signal.signal(signal.SIGTERM, previous)


__all__ = ["CANCEL_DETAIL", "POLL_S", "flow_run_cancelling", "sigterm_cancels", "stop_when_cancelled"]
