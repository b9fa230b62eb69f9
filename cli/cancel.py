"""`switchboard cancel RUN`: cancel a run from any terminal, through Prefect (flows.cancelling.cancel_run)."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

from cyclopts import Parameter, validators

from batches import run_summary
from cli.app import EXIT_FAILED, EXIT_OK, app, err_console, out_console, print_error
from cli.render import render_run
from flows import api_url as local_api_url
from flows import ephemeral_requested, is_healthy
from ledger import Ledger, RunStatus, open_ledger


@app.command
def cancel(
    run_id: str,
    *,
    wait: Annotated[bool, Parameter(help="Wait for the run to stop and print its summary.")] = True,
    timeout: Annotated[
        float, Parameter(validator=validators.Number(gt=0), help="Seconds to wait for the run to stop.")
    ] = 60.0,
    as_json: Annotated[bool, Parameter(name="--json", negative="", help="Print the run's summary as JSON.")] = False,
) -> int:
    """Cancel a running batch (a unique prefix of its id is enough), wherever it runs: here, in another terminal
    or on a worker.

    Its flow run is cancelled through Prefect, as the UI's Cancel does; the process running the batch stops its
    provider calls within a few seconds, records them cancelled and ends the run `cancelled` (run the same spec
    again to resume it). A run whose process is gone is ended `cancelled` at once. Exit 0 once the run has ended
    cancelled (or right after the request with --no-wait), 1 when no such run, when it had already ended other
    than cancelled, when Prefect cannot be reached, or when it is still running after --timeout.
    """
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # before Prefect is imported (flows.cancelling)
    ledger = open_ledger()
    try:
        found = ledger.find_run(run_id)
    except LookupError as exc:
        print_error(f"{exc}; give more of the id")
        return EXIT_FAILED
    if found is None:
        print_error(f"no run {run_id!r} in the ledger (see `switchboard runs`)")
        return EXIT_FAILED
    if not os.environ.get("PREFECT_API_URL") and not ephemeral_requested() and is_healthy():
        os.environ["PREFECT_API_URL"] = local_api_url()  # the managed local server runs the batches started here
    # flows.cancelling imports Prefect, which reads PREFECT_API_URL when imported: only now that it is set.
    from flows import CancelFailed, CancelOutcome, cancel_run, wait_until_ended

    try:
        result = cancel_run(ledger, found.run_id)
    except CancelFailed as exc:
        print_error(str(exc))
        return EXIT_FAILED
    if result.outcome == CancelOutcome.ALREADY_ENDED:
        if result.status == RunStatus.CANCELLED:
            err_console.print(
                f"run {found.run_id} was already cancelled", highlight=False, markup=False, soft_wrap=True
            )
            return _summary(ledger, found.run_id, as_json, RunStatus.CANCELLED)
        print_error(f"run {found.run_id} already ended {result.status}: nothing to cancel")
        return EXIT_FAILED
    if result.outcome == CancelOutcome.ENDED_HERE:
        err_console.print(
            f"run {found.run_id}: its process was gone; ended cancelled here", highlight=False, markup=False
        )
        return _summary(ledger, found.run_id, as_json, result.status)
    err_console.print(
        f"cancel requested: run {found.run_id} (flow run {result.flow_run_id}) stops within a few seconds",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    if not wait:
        return EXIT_OK
    status = wait_until_ended(ledger, found.run_id, timeout)
    if status == RunStatus.RUNNING:
        print_error(f"run {found.run_id} is still running after {timeout:g} s (its flow run is Cancelling)")
        return EXIT_FAILED
    return _summary(ledger, found.run_id, as_json, status)


def _summary(ledger: Ledger, run_id: str, as_json: bool, status: RunStatus) -> int:
    summary = run_summary(ledger, run_id)
    if as_json:
        sys.stdout.write(json.dumps(summary.model_dump(), default=str) + "\n")
    else:
        render_run(out_console, summary)
    if status != RunStatus.CANCELLED:
        print_error(f"run {run_id} ended {status} before the cancel reached it")
        return EXIT_FAILED
    return EXIT_OK


__all__ = ["cancel"]
