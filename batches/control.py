"""Running a batch flow in this process, with Ctrl-C or SIGTERM stopping provider calls and recording them as
cancelled.

The flow itself (Prefect) is handed in by the caller, so the batch core never imports flows.

Signals, in one place: SIGTERM (what `docker stop`, systemd, Kubernetes and `timeout` send) is handled exactly
like SIGINT: nothing is blamed on a provider, no circuit opens, the run ends `interrupted` and resumes on the
next run of the spec; the exit code says which it was (130 or 143). Inside a flow run Prefect and flows.cancelling
put their own SIGTERM handlers in front: a SIGTERM that is Prefect cancelling the flow run is theirs
(`cancelled`), any other is handed to `interrupt_handler()`, this module's.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Protocol

from batches.lifecycle import interrupt_run
from batches.spec import BatchSpec
from ledger import Ledger, RunStatus
from routing import SwitchboardConfig, engine_loop

SignalHandler = Callable[[int, FrameType | None], Any] | int | None
# The signals that interrupt a run: Ctrl-C, and the polite kill of service managers and containers.
INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupts:
    """Ctrl-C for one run started in this process, from just before its run row is written until its summary
    is out, whatever the moment.

    Outside the flow an interrupt is only noted: raising it there could leave the run row half-started, or the
    summary half-printed, and the run `running` with nothing said. The run is then ended `interrupted` without
    starting (or after) the flow. While the flow runs, the first Ctrl-C stops provider calls at once (Prefect
    would otherwise wait for them) and unwinds the flow. A second Ctrl-C, at any point, exits immediately.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None  # the first interrupting signal received
        self._in_flow = False
        self._previous: dict[int, SignalHandler] = {}
        self._installed = False

    @property
    def exit_code(self) -> int:
        """128 + the signal, as a shell reports it: 130 for Ctrl-C, 143 for SIGTERM."""
        return 128 + (self.signum or signal.SIGINT)

    @property
    def what(self) -> str:
        """`interrupted`, or `interrupted by SIGTERM`: what the user is told."""
        return (
            "interrupted"
            if self.signum in (None, signal.SIGINT)
            else f"interrupted by {signal.Signals(self.signum).name}"
        )

    def install(self) -> None:
        global _active
        for signum in INTERRUPT_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        self._installed = True
        _active = self

    def uninstall(self) -> None:
        global _active
        if self._installed:
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)
            self._installed = False
            if _active is self:
                _active = None

    def __enter__(self) -> RunInterrupts:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    @contextmanager
    def flow_running(self) -> Iterator[None]:
        """Inside it, Ctrl-C interrupts the flow there and then."""
        self._in_flow = True
        try:
            yield
        finally:
            self._in_flow = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            os._exit(128 + signum)
        self.requested = True
        self.signum = signum
        if self._in_flow:
            self._in_flow = False  # the KeyboardInterrupt is raised once, not again from wherever it unwinds to
            stop_engine()
            raise KeyboardInterrupt


# The interrupts of the run this process's CLI started, while installed: signal handlers are process-wide, and
# handlers installed later (inside a flow run) hand the signals they do not own back here.
_active: RunInterrupts | None = None


def interrupt_handler() -> Callable[[int, FrameType | None], None] | None:
    """The handler of the run started in this process (`switchboard run`), or None (a worker's flow run)."""
    active = _active
    return active._handle if active is not None else None


def stop_engine() -> None:
    """Stop provider calls at once; Prefect would now log every cancelled task run as a crash, and the ledger
    and our summary say it better."""
    engine_loop().cancel_all()
    logging.getLogger("prefect").setLevel(logging.CRITICAL)


class RunFlow(Protocol):
    """Runs the batch flow for a started run in this process (flows.run_batch_flow); raises what crashed it."""

    def __call__(
        self,
        config: SwitchboardConfig,
        *,
        spec: BatchSpec | str,
        providers: str | None,
        strategy: str,
        run_id: str,
        mode: str,
    ) -> object: ...


def execute_run(
    run_flow: RunFlow,
    spec: BatchSpec | str,
    config: SwitchboardConfig,
    providers: str | None,
    strategy: str,
    *,
    run_id: str,
    ledger: Ledger,
    mode: str = "auto",
    interrupts: RunInterrupts | None = None,
) -> RunStatus:
    """Run the flow (`run_flow`) for an already started run; returns the run's final status.

    `spec` is best the path the run's spec was loaded from: the flow run then stores a path, not the whole spec
    (for 1,000 tasks Prefect spent 0.4-0.8 s walking, encoding and storing it), and reads the parsed spec back
    from this process's cache. `interrupts`: the caller's, installed before it started the run (Ctrl-C before
    the flow starts then skips it); without one, Ctrl-C is handled from here on.
    """
    own = interrupts is None
    watch = interrupts if interrupts is not None else RunInterrupts()
    if own:
        watch.install()
    try:
        if not watch.requested:
            try:
                with watch.flow_running():
                    run_flow(config, spec=spec, providers=providers, strategy=strategy, run_id=run_id, mode=mode)
            except (KeyboardInterrupt, concurrent.futures.CancelledError):
                if not (watch.requested or engine_loop().stopping):
                    raise
    finally:
        if own:
            watch.uninstall()
    if watch.requested or engine_loop().stopping:
        interrupt_run(ledger, run_id)
        return RunStatus.INTERRUPTED
    run = ledger.get_run(run_id)  # `cancelled` when its flow run was cancelled in Prefect (flows.cancelling)
    if run is not None and run.status == RunStatus.RUNNING:
        # The flow itself crashed before finishing: the tasks it did not reach stay pending for a resume.
        ledger.finish_run(run_id, RunStatus.FAILED)
        return RunStatus.FAILED
    return run.status if run else RunStatus.FAILED


__all__ = ["INTERRUPT_SIGNALS", "RunFlow", "RunInterrupts", "execute_run", "interrupt_handler", "stop_engine"]
