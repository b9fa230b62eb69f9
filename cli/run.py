"""`switchboard run`, `runs` and `show`: run a batch spec here (or on a worker), list runs, show one."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from cyclopts import Parameter, validators
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from batches import (
    DIGEST_ABOVE,
    BatchSpec,
    RunHeader,
    RunInterrupts,
    execute_run,
    load_spec,
    lost_run_memory,
    resolve_strategy,
    run_summary,
    select_tasks,
    start_run,
    summary_without_ledger,
)
from cli.app import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, app, err_console, out_console, print_error
from cli.progress import LedgerProgress
from cli.render import render_run, render_runs
from cli.watch import follow
from configtools import Validation, environment_problems, validate_file
from flows import (
    PREFECT_MODE_ENV,
    DeploymentNotFound,
    PrefectUnreachable,
    check_api,
    check_deployment_name,
    connect_prefect,
    ephemeral_requested,
    quiet_ephemeral_shutdown,
    runner_problem,
    secret_resolver,
    submit_batch,
)
from ledger import (
    STORE_UNAVAILABLE,
    Ledger,
    LedgerLost,
    RunInProgress,
    RunStatus,
    open_ledger,
    shown_url,
    spool_dir,
    spooled_items,
)
from providers import utc_now
from routing import PROVIDERS_ENV, InputError, SwitchboardConfig, load_config


def _ephemeral() -> bool:
    return not os.environ.get("PREFECT_API_URL") and ephemeral_requested()


# Prefect reads overrides of its logging config from PREFECT_LOGGING_<path>_<to>_<key>.
QUIET_TERMINAL_LOGGING = {
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "INFO",
}


def _quiet_prefect(verbose: bool) -> None:
    """Keep Prefect's own chatter off the terminal unless asked; must run before prefect is imported."""
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        # The run's own log (each task's routing outcome, at INFO) still reaches the Prefect server, the flow
        # run's Logs tab; only the terminal's handler stays at WARNING.
        for variable, level in QUIET_TERMINAL_LOGGING.items():
            os.environ.setdefault(variable, level)
    # The ephemeral server's shutdown prints flush/CancelledError tracebacks that are noise for our users.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    # No telemetry from the embedded server: it would try to reach the internet.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if _ephemeral():
        quiet_ephemeral_shutdown()  # ... and SQLAlchemy's pool prints one more, through another logger


def _connect_prefect() -> str | None:
    """The Prefect API this run reports to (flows.server.connect_prefect), exported for Prefect; announces the
    start of the managed local server. Must run before prefect is imported."""
    return connect_prefect(announce=lambda message: err_console.print(message, highlight=False, markup=False))


def _flow_run_url(api: str | None, flow_run_id: str | None) -> str | None:
    if api is None or not flow_run_id:
        return None
    return f"{api.rstrip('/').removesuffix('/api')}/runs/flow-run/{flow_run_id}"


@app.command
def run(
    spec: Path,
    *,
    providers: Annotated[
        Path | None, Parameter(help="Providers file (default: $SWITCHBOARD_PROVIDERS or built-in mocks).")
    ] = None,
    strategy: Annotated[str | None, Parameter(help="Routing strategy for this run.")] = None,
    as_json: Annotated[bool, Parameter(name="--json", negative="", help="Print one JSON object on stdout.")] = False,
    explain: Annotated[bool, Parameter(negative="", help="Include each task's routing decision.")] = False,
    fresh: Annotated[bool, Parameter(negative="", help="Start a new run even if an unfinished one exists.")] = False,
    verbose: Annotated[bool, Parameter(negative="", help="Show Prefect's logs.")] = False,
    mode: Annotated[
        Literal["auto", "per_node", "chunked"],
        Parameter(help="One Prefect task per batch task, or one per DAG level (auto: by size)."),
    ] = "auto",
    deployment: Annotated[
        str | None,
        Parameter(
            help="Trigger this deployment (e.g. process-batch/process-batch) on a worker instead of running here."
        ),
    ] = None,
) -> int:
    """Run a batch spec (YAML or JSON).

    Exit 0 when all tasks completed, 1 when any failed or was skipped or the Prefect API cannot be reached
    (PREFECT_API_URL not answering, the local server not starting), 2 on invalid input (the spec, the
    providers file, --strategy, a ledger database that cannot be opened, a Dask runner without a Prefect
    server, an unknown --deployment), 130 when interrupted by Ctrl-C (143 by SIGTERM, handled the same way)
    or cancelled (its flow run cancelled in Prefect: the UI, `prefect flow-run cancel`, `switchboard cancel`).
    With --deployment, exit 0 once the run is submitted.
    """
    interrupts = RunInterrupts()
    try:
        ready = _prepare_run(spec, providers, strategy, verbose, deployment)
        if not isinstance(ready, int) and deployment is None:
            # From here until the summary is printed a Ctrl-C is noted, then handled (batches.control):
            # whatever its moment, a run that was written ends `interrupted` and the summary still comes out.
            interrupts.install()
    except KeyboardInterrupt:
        err_console.print("interrupted before the run started: nothing was written", highlight=False)
        return EXIT_INTERRUPTED
    if isinstance(ready, int):
        return ready
    if deployment is not None:
        return _submit(spec, ready.providers_file, strategy, deployment, ready.api, as_json, fresh, mode)
    try:
        return _run_here(ready, spec, explain, as_json, fresh, mode, interrupts)
    finally:
        interrupts.uninstall()


@dataclass(frozen=True)
class _Ready:
    """What `switchboard run` checked and opened before anything is written."""

    batch: BatchSpec
    config: SwitchboardConfig
    chosen: str  # the strategy
    ledger: Ledger | None  # None with --deployment: the worker's ledger records the run
    api: str | None  # None in ephemeral mode
    providers_file: str | None  # absolute, as the flow (or the worker) reads it


def _prepare_run(
    spec: Path, providers: Path | None, strategy: str | None, verbose: bool, deployment: str | None
) -> _Ready | int:
    """Check the inputs, open the ledger and reach Prefect; an exit code if any of it fails (nothing written)."""
    try:
        batch = load_spec(spec)
    except InputError as exc:
        print_error(str(exc))
        return EXIT_INVALID
    checked = _check_providers_file(providers)
    if isinstance(checked, int):
        return checked
    try:
        config = checked.config if checked is not None and checked.config else load_config(providers)
    except InputError as exc:
        print_error(str(exc))
        return EXIT_INVALID
    try:
        chosen = resolve_strategy(config, strategy)
    except ValueError as exc:
        print_error(f"--strategy: {exc}")
        return EXIT_INVALID
    if deployment is not None:
        try:
            check_deployment_name(deployment)
        except ValueError as exc:
            print_error(f"--deployment: {exc}")
            return EXIT_INVALID
    else:
        problem = runner_problem(config.runner, has_server=not _ephemeral())
        if problem is not None:
            print_error(f"{config.source}: {problem}")
            return EXIT_INVALID
    if os.environ.get("PREFECT_API_URL"):
        # A stale URL (after `switchboard server stop`, a reboot) is an environment problem: exit 1, said in one
        # line before even the ledger is opened.
        try:
            check_api(os.environ["PREFECT_API_URL"])
        except PrefectUnreachable as exc:
            print_error(str(exc))
            return EXIT_FAILED
    # Before Prefect: a ledger that cannot be opened stops the run here (LedgerUnavailable, see main).
    ledger = open_ledger() if deployment is None else None
    _quiet_prefect(verbose)
    try:
        api = _connect_prefect()
    except PrefectUnreachable as exc:  # it stopped answering since the check above
        print_error(str(exc))
        return EXIT_FAILED
    except Exception as exc:  # the server could not start: say why and how to run without it
        print_error(
            f"could not start the local Prefect server: {exc}\n"
            f"set PREFECT_API_URL to a running server, or {PREFECT_MODE_ENV}=ephemeral to run without one"
        )
        return EXIT_FAILED
    if checked is not None and deployment is None:  # a worker's environment is not this one's to judge
        _warn_about_environment(checked)
    providers_file = str(providers.expanduser().resolve()) if providers else None
    return _Ready(batch, config, chosen, ledger, api, providers_file)


def _check_providers_file(providers: Path | None) -> Validation | int | None:
    """`config validate`'s checks of the file itself, before anything else: every problem on stderr, one line each,
    and exit 2. None when no file is named (the built-in mocks)."""
    named = providers or (Path(os.environ[PROVIDERS_ENV]) if os.environ.get(PROVIDERS_ENV) else None)
    if named is None:
        return None
    checked = validate_file(named.expanduser(), environment=False)
    if checked.file_problems:
        for problem in checked.file_problems:
            print_error(problem.one_line())
        return EXIT_INVALID
    return checked


def _warn_about_environment(checked: Validation) -> None:
    """The environment's problems (a key not set, a config dir without a login, no `claude`) as warnings: routing
    fails over from a provider that cannot work, so they do not stop the run. Run once Prefect is connected, so
    that Secret blocks are looked up where a Prefect API answers."""
    assert checked.config is not None
    resolver = secret_resolver()
    found = environment_problems(
        checked.source, checked.config, resolver, blocks_checked=resolver.uses_blocks(), api_tokens=False
    )
    for problem in found:
        err_console.print(f"[yellow]warning:[/] {escape(problem.one_line())}", highlight=False, soft_wrap=True)


def _run_here(
    ready: _Ready, spec: Path, explain: bool, as_json: bool, fresh: bool, mode: str, interrupts: RunInterrupts
) -> int:
    if interrupts.requested:  # Ctrl-C or SIGTERM right after the checks: the run was not started
        err_console.print(f"{interrupts.what} before the run started: nothing was written", highlight=False)
        return interrupts.exit_code
    ledger, batch = ready.ledger, ready.batch
    assert ledger is not None  # opened by _prepare_run whenever there is no --deployment
    try:
        run_id, resumed = start_run(ledger, batch, ready.chosen, fresh=fresh)
    except RunInProgress as exc:
        print_error(f"{exc}; wait for it to finish, or pass --fresh to start a separate run")
        return EXIT_INVALID
    if resumed:
        err_console.print(f"resuming unfinished run [bold]{run_id}[/] of {escape(repr(batch.name))}", highlight=False)
    with LedgerProgress(ledger, run_id, total=len(batch.tasks), console=err_console):
        # Prefect reads its settings from the environment when imported, so only now, after _quiet_prefect and
        # _connect_prefect set them; a Ctrl-C during its import (a second or so) is noted by `interrupts`.
        from flows import run_batch_flow

        spec_file = str(spec.expanduser().resolve())
        try:
            status = execute_run(
                run_batch_flow,
                spec_file,
                ready.config,
                ready.providers_file,
                ready.chosen,
                run_id=run_id,
                ledger=ledger,
                mode=mode,
                interrupts=interrupts,
            )
        except (LedgerLost, SQLAlchemyError) as exc:
            return _ledger_lost(ledger, run_id, batch, ready.chosen, as_json, exc)
    try:
        summary = run_summary(ledger, run_id, explain=explain)
    except SQLAlchemyError as exc:
        return _ledger_lost(ledger, run_id, batch, ready.chosen, as_json, exc)
    summary = summary.with_ui_url(_flow_run_url(ready.api, summary.run.flow_run_id))
    if as_json:
        sys.stdout.write(json.dumps(summary.model_dump(), default=str) + "\n")
        sys.stdout.flush()
    else:
        render_run(out_console, summary, explain=explain)
    store_refused = sum(1 for t in summary.tasks if t.error and STORE_UNAVAILABLE in t.error)
    if store_refused:
        # Routing refused rather than risk passing a shared limit; one line says so (the tasks name the reason).
        print_error(
            f"{STORE_UNAVAILABLE} (the ledger at {shown_url(ledger.url)}) could not be used: "
            f"{store_refused} task{'s' if store_refused != 1 else ''} refused rather than risk passing a limit; "
            "run the spec again once the database answers"
        )
    if summary.totals.spooled_rows:
        err_console.print(
            f"warning: {summary.totals.spooled_rows} row(s) of run {run_id} could not be written to the ledger at "
            f"{shown_url(ledger.url)}; they are kept in {spool_dir()} and written there at the next start",
            highlight=False,
            markup=False,
        )
    if status == RunStatus.INTERRUPTED and not interrupts.requested:  # stopped because the ledger went away
        print_error(
            f"the ledger at {shown_url(ledger.url)} could not be reached during run {run_id}, which stopped it; "
            f"run the same spec again to resume it"
        )
        return EXIT_FAILED
    if status == RunStatus.INTERRUPTED:
        err_console.print(
            f"{interrupts.what}: in-flight calls were stopped and recorded as cancelled; "
            f"run the same spec again to resume {run_id}",
            highlight=False,
        )
        return interrupts.exit_code
    if status == RunStatus.CANCELLED:
        err_console.print(
            "cancelled: the flow run was cancelled in Prefect; in-flight calls were stopped and recorded as "
            f"cancelled; run the same spec again to resume {run_id}",
            highlight=False,
        )
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.run.status == RunStatus.COMPLETED else EXIT_FAILED


def _ledger_lost(ledger: Ledger, run_id: str, batch: BatchSpec, strategy: str, as_json: bool, error: Exception) -> int:
    """The ledger went away mid-run: the run stopped, its answers are spooled. Say so in one line, print what is
    known as the `--json` object (status `interrupted`, every task as this process knows it, batches.lost_summary),
    exit 1."""
    spooled = spooled_items(ledger.url, run_id)
    memory = lost_run_memory(run_id)  # taken even without --json: it holds the run's outputs
    if as_json:
        header = RunHeader(
            id=run_id,
            name=batch.name,
            status=RunStatus.INTERRUPTED,
            strategy=strategy,
            team=batch.team,
            started_at=utc_now().isoformat(),
        )
        summary = summary_without_ledger(batch, header, memory, spooled)
        sys.stdout.write(json.dumps(summary.model_dump(), default=str) + "\n")
        sys.stdout.flush()
    spooled_count = len(spooled)
    reason = (
        error.reason if isinstance(error, LedgerLost) else f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    )
    print_error(
        f"the ledger at {shown_url(ledger.url)} could not be reached during run {run_id} ({reason}); "
        f"{spooled_count} row(s) are kept in {spool_dir()} and written at the next start; run the same spec again "
        "to resume"
    )
    return EXIT_FAILED


def _submit(
    spec: Path,
    providers: str | None,
    strategy: str | None,
    deployment: str,
    api: str | None,
    as_json: bool,
    fresh: bool,
    mode: Literal["auto", "per_node", "chunked"],
) -> int:
    """Trigger the deployment on a worker and report the flow run it created."""
    if api is None:
        print_error(f"--deployment needs a Prefect server (unset {PREFECT_MODE_ENV})")
        return EXIT_INVALID
    try:
        flow_run_id = submit_batch(
            spec, providers=providers, strategy=strategy, fresh=fresh, mode=mode, deployment=deployment
        )
    except DeploymentNotFound as exc:
        print_error(str(exc))
        return EXIT_INVALID
    url = _flow_run_url(api, flow_run_id)
    if as_json:
        sys.stdout.write(json.dumps({"deployment": deployment, "flow_run_id": flow_run_id, "ui_url": url}) + "\n")
    else:
        out_console.print(
            f"submitted {deployment}: flow run {flow_run_id}\n{url}\nfollow it: switchboard watch {flow_run_id}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    return EXIT_OK


@app.command
def runs(
    *,
    limit: Annotated[int, Parameter(validator=validators.Number(gte=1), help="How many runs (at least 1).")] = 20,
    as_json: Annotated[bool, Parameter(name="--json", negative="")] = False,
) -> int:
    """List recent runs, newest first."""
    ledger = open_ledger()
    summaries = [run_summary(ledger, r.run_id) for r in ledger.list_runs(limit)]
    if as_json:
        listing = [{"run": s.run.model_dump(), "totals": s.totals.model_dump()} for s in summaries]
        sys.stdout.write(json.dumps(listing, default=str) + "\n")
    else:
        render_runs(out_console, summaries)
    return EXIT_OK


TaskStatusName = Literal["pending", "completed", "failed", "skipped", "cancelled"]


@app.command
def show(
    run_id: str,
    *,
    as_json: Annotated[bool, Parameter(name="--json", negative="")] = False,
    status: Annotated[
        list[TaskStatusName] | None,
        Parameter(negative="", help="Only tasks with this status (repeat for several)."),
    ] = None,
    provider: Annotated[
        list[str] | None,
        Parameter(negative="", help="Only tasks this provider answered or was tried for (repeat for several)."),
    ] = None,
    task_type: Annotated[
        list[str] | None, Parameter(name="--type", negative="", help="Only tasks of this type (repeat for several).")
    ] = None,
    show_all: Annotated[
        bool,
        Parameter(name="--all", negative="", help=f"One row per task even above {DIGEST_ABOVE} tasks."),
    ] = False,
    follow_run: Annotated[
        bool,
        Parameter(name="--follow", negative="", help="Follow the run to its end first (as `switchboard watch`)."),
    ] = False,
) -> int:
    """Show a run's tasks, routing decisions and outputs (a unique prefix of the id is enough).

    Above 30 tasks (after the filters) the run is shown grouped by status and provider, with its failed and
    skipped tasks listed; --all shows every task's row, --json every task's data (the totals stay the whole
    run's). With --follow, the run is followed to its end first, as `switchboard watch RUN` does, and the exit
    code is watch's. Exit 1 when no run, or more than one, matches.
    """
    if follow_run:
        return follow(run_id, as_json=as_json)
    ledger = open_ledger()
    try:
        found = ledger.find_run(run_id)
    except LookupError as exc:  # a prefix several runs share
        print_error(f"{exc}; give more of the id")
        return EXIT_FAILED
    if found is None:
        print_error(f"no run {run_id!r} in the ledger (see `switchboard runs`)")
        return EXIT_FAILED
    summary = run_summary(ledger, found.run_id, explain=True)
    summary = select_tasks(summary, statuses=status or (), providers=provider or (), types=task_type or ())
    if as_json:
        sys.stdout.write(json.dumps(summary.model_dump(), default=str) + "\n")
    else:
        command = " ".join(
            [f"switchboard show {found.run_id}"]
            + [f"--status {s}" for s in status or ()]
            + [f"--provider {p}" for p in provider or ()]
            + [f"--type {t}" for t in task_type or ()]
        )
        render_run(out_console, summary, explain=True, outputs=True, whole=show_all, show_command=command)
    return EXIT_OK


__all__ = ["run", "runs", "show"]
