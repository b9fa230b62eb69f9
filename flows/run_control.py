"""Running a batch flow in this process, with Ctrl-C stopping provider calls and recording them as cancelled."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType

from flows.spec import BatchSpec
from ledger import Ledger
from routing.config import SwitchboardConfig
from routing.loop import engine_loop

# How long in-flight calls get to record their cancellation after Ctrl-C before we mark the rest ourselves.
CANCEL_GRACE_S = 5.0


def execute_run(
    spec: BatchSpec | str,
    config: SwitchboardConfig,
    providers: str | None,
    strategy: str,
    *,
    run_id: str,
    ledger: Ledger,
    mode: str = "auto",
) -> str:
    """Run the flow for an already started run; returns the run's final status.

    `spec` is best the path the run's spec was loaded from: the flow run then stores a path, not the whole spec
    (for 1,000 tasks Prefect spent 0.4-0.8 s walking, encoding and storing it), and reads the parsed spec back
    from this process's cache.
    """
    from flows.batch import run_batch_flow

    previous_handler = signal.signal(signal.SIGINT, _interrupt_handler())
    try:
        run_batch_flow(config, spec=spec, providers=providers, strategy=strategy, run_id=run_id, mode=mode)
    except (KeyboardInterrupt, concurrent.futures.CancelledError):
        if not engine_loop().stopping:
            raise
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    if engine_loop().stopping:
        interrupt_run(ledger, run_id)
        return "interrupted"
    run = ledger.get_run(run_id)
    if run is not None and run.status == "running":
        # The flow itself crashed before finishing: the tasks it did not reach stay pending for a resume.
        ledger.finish_run(run_id, "failed")
        return "failed"
    return run.status if run else "failed"


def _interrupt_handler() -> Callable[[int, FrameType | None], None]:
    """First Ctrl-C: stop provider calls at once (Prefect would otherwise wait for them), then unwind.
    A second Ctrl-C exits immediately."""
    interrupted = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        if interrupted:
            os._exit(130)
        interrupted = True
        engine_loop().cancel_all()
        # Prefect would now log every cancelled task run as a crash; the ledger and our summary say it better.
        logging.getLogger("prefect").setLevel(logging.CRITICAL)
        raise KeyboardInterrupt

    return handler


def interrupt_run(ledger: Ledger, run_id: str) -> None:
    """Cancel in-flight provider calls, wait briefly for them to record, and mark the unfinished tasks cancelled."""
    loop = engine_loop()
    loop.cancel_all()
    deadline = time.monotonic() + CANCEL_GRACE_S
    while time.monotonic() < deadline and loop.in_flight() > 0:
        time.sleep(0.05)
    for state in ledger.task_states(run_id).values():
        if state.status == "pending":
            ledger.finish_task(run_id, state.task_id, status="cancelled", error="cancelled (interrupted)")
    ledger.finish_run(run_id, "interrupted")
