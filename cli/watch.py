"""`switchboard watch RUN` (and `show RUN --follow`): follow a batch executing elsewhere (a worker, another
terminal) to its end, from the ledger and Prefect: a live progress bar, the failovers as they happen, the flow
run's state changes, then the run's summary."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Annotated

from cyclopts import Parameter, validators

from batches import AttemptFeed, run_summary
from cli.app import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, app, err_console, out_console, print_error
from cli.progress import LedgerProgress
from cli.render import render_run
from flows import api_url as local_api_url
from flows import ephemeral_requested, is_healthy
from ledger import Ledger, RunRecord, RunStatus, open_ledger

# Seconds between two reads of the flow run's state in Prefect (the ledger is read every `--interval`).
PREFECT_EVERY_S = 2.0
# How long a run may stay `running` in the ledger after its flow run ended (its last writes landing) before the
# follower says its process is gone.
ENDED_GRACE_S = 15.0
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


@app.command
def watch(
    run: str,
    *,
    as_json: Annotated[bool, Parameter(name="--json", negative="", help="End with the run's JSON summary.")] = False,
    interval: Annotated[
        float, Parameter(validator=validators.Number(gt=0), help="Seconds between two reads of the ledger.")
    ] = 1.0,
) -> int:
    """Follow a run to its end: a run id (a unique prefix is enough) or the Prefect flow run id that
    `switchboard run --deployment` printed (waiting for a worker to start it).

    Shows a progress bar (on a terminal), the failovers and rotations as they are recorded and the flow run's
    state changes on stderr, then the run's summary on stdout (--json: the object `switchboard run --json`
    prints). Exit as `switchboard run` would: 0 completed, 1 failed (or its process died, or no such run), 130
    interrupted or cancelled.
    """
    return follow(run, as_json=as_json, interval=interval)


def follow(run: str, *, as_json: bool = False, interval: float = 1.0) -> int:
    """What `watch` and `show --follow` do."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # before Prefect is imported (flows.following)
    ledger = open_ledger()
    try:
        found = ledger.find_run(run)
    except LookupError as exc:
        print_error(f"{exc}; give more of the id")
        return EXIT_FAILED
    flow_run_id = found.flow_run_id if found is not None else (run if _UUID.match(run) else None)
    if found is None and flow_run_id is None:
        print_error(f"no run {run!r} in the ledger (see `switchboard runs`), and it is not a flow run id")
        return EXIT_FAILED
    if not os.environ.get("PREFECT_API_URL") and not ephemeral_requested() and is_healthy():
        os.environ["PREFECT_API_URL"] = local_api_url()  # the managed local server runs the batches started here
    if found is None:
        assert flow_run_id is not None
        found = _wait_for_run(ledger, flow_run_id, interval)
        if found is None:
            return EXIT_FAILED
    return _follow_run(ledger, found, as_json, interval)


def _wait_for_run(ledger: Ledger, flow_run_id: str, interval: float) -> RunRecord | None:
    """A flow run not yet in the ledger: wait while Prefect has it scheduled or starting (a worker picks it up)."""
    # flows.following imports Prefect, which reads PREFECT_API_URL when imported: only now that it is set.
    from flows import flow_run_state

    said: str | None = None
    while True:
        found = ledger.run_of_flow_run(flow_run_id)
        if found is not None:
            return found
        state = flow_run_state(flow_run_id)
        if state is None:
            print_error(f"no run {flow_run_id!r} in the ledger, and Prefect does not know such a flow run")
            return None
        if state.final:
            print_error(f"flow run {flow_run_id} ended {state.name} before its batch started: {state.message or ''}")
            return None
        if state.name != said:
            _note(f"flow run {flow_run_id}: {state.name}, waiting for a worker to start it")
            said = state.name
        time.sleep(interval)


def _follow_run(ledger: Ledger, run: RunRecord, as_json: bool, interval: float) -> int:
    # flows.following imports Prefect, which reads PREFECT_API_URL when imported: only now that it is set.
    from flows import flow_run_state

    run_id = run.run_id
    total = sum(ledger.task_status_counts(run_id).values())
    feed = AttemptFeed(ledger, run_id)
    earlier = feed.poll()
    if run.status == RunStatus.RUNNING:
        _note(f"following run {run_id} ({run.batch_name}, {total} tasks); Ctrl-C stops watching, not the run")
        if earlier:
            _note(f"{len(earlier)} failovers and rotations so far")
    said: str | None = None
    ended_at: float | None = None
    next_read = 0.0
    with LedgerProgress(ledger, run_id, total=total, console=err_console):
        while True:
            current = ledger.get_run(run_id)
            for move in feed.poll():
                _note(move.describe())
            if current is None:
                print_error(f"run {run_id} left the ledger while being followed")
                return EXIT_FAILED
            if current.status != RunStatus.RUNNING:
                break
            if current.flow_run_id and time.monotonic() >= next_read:
                next_read = time.monotonic() + PREFECT_EVERY_S
                state = flow_run_state(current.flow_run_id)
                if state is not None and state.name != said:
                    if said is not None or state.type != "RUNNING":
                        _note(f"flow run {current.flow_run_id}: {state.name}")
                    said = state.name
                if state is not None and state.final:
                    ended_at = ended_at or time.monotonic()
                    if time.monotonic() - ended_at > ENDED_GRACE_S:
                        print_error(
                            f"flow run {current.flow_run_id} ended {state.name} but run {run_id} is still running "
                            "in the ledger: its process is gone; run the spec again to resume it, or "
                            f"`switchboard cancel {run_id}`"
                        )
                        return EXIT_FAILED
            time.sleep(interval)
    summary = run_summary(ledger, run_id)
    if as_json:
        sys.stdout.write(json.dumps(summary.model_dump(), default=str) + "\n")
    else:
        render_run(out_console, summary)
    status = summary.run.status
    if status in (RunStatus.INTERRUPTED, RunStatus.CANCELLED):
        return EXIT_INTERRUPTED
    return EXIT_OK if status == RunStatus.COMPLETED else EXIT_FAILED


def _note(line: str) -> None:
    err_console.print(line, highlight=False, markup=False, soft_wrap=True)


__all__ = ["follow", "watch"]
