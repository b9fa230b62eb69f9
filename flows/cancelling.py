"""A batch flow run that stops itself when it is cancelled in Prefect, wherever it runs.

Prefect enforces cancellation only through a worker (PREFECT.md, gotcha 15): a flow run started in this process
(`switchboard run`, `run_batch`) cancelled from the UI, `prefect flow-run cancel` or the API just sits in
Cancelling while its tasks go on. So the flow body watches its own flow run's state (`stop_when_cancelled`,
a read every `POLL_S`) and, once it is Cancelling or Cancelled, stops the run (batches.stopping). On a worker,
the worker's runner also sends the process SIGTERM when a run is cancelled; `sigterm_cancels` tells that kill
apart from any other SIGTERM by the flow run's state and stops the run the same way, so the flow still records
what it did and ends Cancelled instead of dying mid-write. Any other SIGTERM interrupts a run `switchboard run`
started in this process like Ctrl-C (batches.control), else goes to the handler that was there.

`cancel_run` is the cancel from anywhere (`switchboard cancel`, the HTTP API): it cancels the run's flow run through
Prefect's API, exactly as the UI does, and the process running the batch stops it; a run whose process is gone is
ended `cancelled` on the spot. `wait_until_ended` waits for the run to end in the ledger.
"""

from __future__ import annotations

import contextvars
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from types import FrameType
from typing import Any
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.states import Cancelled, State

from batches import StopReason, StopRequest, end_stopped_run, interrupt_handler, owner_active, run_stop
from ledger import Ledger, RunRecord, RunStatus
from providers import utc_now

# Seconds between two reads of the flow run's state: a cancel is seen within about this long.
POLL_S = 1.0
# A read that takes longer is given up (the next one tries again).
READ_TIMEOUT_S = 5.0
CANCEL_DETAIL = "flow run cancelled in Prefect"
CANCEL_SIGNAL_DETAIL = "flow run cancelled in Prefect; stopped by the worker's signal"
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
def stop_when_cancelled(run_id: str, flow_run_id: UUID | str, *, poll_s: float | None = None) -> Iterator[None]:
    """While inside, a cancel of `flow_run_id` in Prefect stops the run `run_id` within about `poll_s`."""
    poll_s = POLL_S if poll_s is None else poll_s
    stop = run_stop(run_id)
    done = threading.Event()
    task_runs = logging.getLogger(TASK_RUN_LOGGER)
    level = task_runs.level

    def watch() -> None:
        while not done.wait(poll_s):
            if stop.request_made is not None:
                return
            if flow_run_cancelling(flow_run_id):
                quiet_cancelled_task_runs()  # before the stop: its first cancelled task run would log already
                if stop.request(StopReason.CANCELLED, CANCEL_DETAIL):
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
            quiet_cancelled_task_runs()
            stop.request(StopReason.CANCELLED, CANCEL_SIGNAL_DETAIL)
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


CANCEL_COMMAND_DETAIL = "cancelled with switchboard cancel; the process running it was gone"
# How long `cancel_run` waits for a live run's flow run to exist (the run row is written just before it starts).
FLOW_RUN_WAIT_S = 10.0


class CancelOutcome(StrEnum):
    REQUESTED = "requested"  # its flow run is Cancelling: the process running the batch stops it within seconds
    ENDED_HERE = "ended_here"  # nothing ran it any more: it was ended `cancelled` here
    ALREADY_ENDED = "already_ended"  # it had ended before (see `status`): nothing to cancel


@dataclass(frozen=True, slots=True)
class CancelResult:
    run_id: str
    flow_run_id: str | None
    outcome: CancelOutcome
    status: RunStatus  # the run's status in the ledger right after the request


class CancelFailed(RuntimeError):
    """The run could not be cancelled (Prefect unreachable, no flow run yet); the message says why."""


def cancel_run(ledger: Ledger, run_id: str, *, owner_alive: Callable[[RunRecord], bool] | None = None) -> CancelResult:
    """Cancel a run of the ledger from anywhere, through Prefect (the function behind `switchboard cancel` and the
    HTTP API's batch cancel). KeyError for a run the ledger does not have.

    A running run's flow run is moved to Cancelling (what the UI's Cancel does); the process running the batch,
    here or on a worker, sees it and stops (flows.cancelling). A run whose process is gone (killed, its machine
    down) is ended `cancelled` here and its flow run set Cancelled. `owner_alive` decides whether the run's
    process still runs (default: its claim in the ledger, batches.owner_active).
    """
    run = ledger.get_run(run_id)
    if run is None:
        raise KeyError(run_id)
    if run.status != RunStatus.RUNNING:
        return CancelResult(run_id, run.flow_run_id, CancelOutcome.ALREADY_ENDED, run.status)
    alive = (owner_alive or _owner_alive)(run)
    if not alive:
        request = StopRequest(reason=StopReason.CANCELLED, detail=CANCEL_COMMAND_DETAIL, at=utc_now())
        status = end_stopped_run(ledger, run_id, request)
        if run.flow_run_id:
            _set_flow_run_state(
                run.flow_run_id, Cancelled(message=f"{CANCEL_COMMAND_DETAIL} (run {run_id})"), force=True
            )
        return CancelResult(run_id, run.flow_run_id, CancelOutcome.ENDED_HERE, status)
    flow_run_id = run.flow_run_id or _wait_for_flow_run(ledger, run_id)
    if flow_run_id is None:
        raise CancelFailed(f"run {run_id} has no Prefect flow run yet; try again in a moment")
    status = _set_flow_run_state(flow_run_id, State(type=StateType.CANCELLING, message=f"switchboard cancel {run_id}"))
    after = ledger.get_run(run_id)
    current = after.status if after is not None else RunStatus.RUNNING
    if status == SetStateStatus.ABORT and current != RunStatus.RUNNING:  # it ended meanwhile
        return CancelResult(run_id, flow_run_id, CancelOutcome.ALREADY_ENDED, current)
    return CancelResult(run_id, flow_run_id, CancelOutcome.REQUESTED, current)


def wait_until_ended(ledger: Ledger, run_id: str, timeout: float, *, poll_s: float = 0.25) -> RunStatus:
    """The run's status once it is no longer running, or `running` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        run = ledger.get_run(run_id)
        status = run.status if run is not None else RunStatus.RUNNING
        if status != RunStatus.RUNNING or time.monotonic() >= deadline:
            return status
        time.sleep(poll_s)


def _owner_alive(run: RunRecord) -> bool:
    return run.owner is not None and owner_active(run.owner, run.heartbeat_at)


def _wait_for_flow_run(ledger: Ledger, run_id: str) -> str | None:
    deadline = time.monotonic() + FLOW_RUN_WAIT_S
    while time.monotonic() < deadline:
        run = ledger.get_run(run_id)
        if run is None or run.flow_run_id:
            return run.flow_run_id if run is not None else None
        time.sleep(0.2)
    return None


def _set_flow_run_state(flow_run_id: str, state: State[Any], *, force: bool = False) -> SetStateStatus:
    try:
        with get_client(sync_client=True, httpx_settings={"timeout": READ_TIMEOUT_S}) as client:
            return client.set_flow_run_state(UUID(flow_run_id), state, force=force).status
    except Exception as exc:
        raise CancelFailed(f"could not reach Prefect to cancel flow run {flow_run_id}: {exc}") from exc


__all__ = [
    "CANCEL_DETAIL",
    "POLL_S",
    "CancelFailed",
    "CancelOutcome",
    "CancelResult",
    "cancel_run",
    "flow_run_cancelling",
    "sigterm_cancels",
    "stop_when_cancelled",
    "wait_until_ended",
]
