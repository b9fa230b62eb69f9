"""`switchboard server start|stop|status`: the managed local Prefect server and its worker (flows/server.py)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

from cyclopts import App, Parameter

from cli.app import EXIT_FAILED, EXIT_OK, app, out_console, print_error
from flows import ServerError, ServerInfo, server_status, start_server, stop_server

server_app = App(name="server", help="Manage the local Prefect server (and a worker for the `switchboard` pool).")
app.command(server_app)

PortOption = Annotated[int | None, Parameter(help="Port on 127.0.0.1 (default: $SWITCHBOARD_PREFECT_PORT or 4200).")]


def _describe(info: ServerInfo) -> None:
    state = "running" if info.running else "not running"
    owner = f" (pid {info.pid}, started by switchboard)" if info.managed else ""
    if info.running and not info.managed:
        owner = " (not started by switchboard)"
    worker = f"running (pid {info.worker_pid})" if info.worker_pid else "not running"
    lines = [
        f"Prefect server: {state}{owner}",
        f"  API:    {info.api_url}",
        f"  UI:     {info.ui_url}",
        f"  worker: {worker} on pool {info.pool!r}",
        f"  server log: {info.server_log}",
        f"  worker log: {info.worker_log}",
        f"  Prefect home: {info.prefect_home}",
    ]
    for line in lines:  # paths and URLs as written: `[...]` in a folder name is not markup
        out_console.print(line, highlight=False, markup=False, soft_wrap=True)


@server_app.command
def start(
    *,
    port: PortOption = None,
    worker: Annotated[bool, Parameter(help="Also start a worker for the `switchboard` process pool.")] = True,
    as_json: Annotated[bool, Parameter(name="--json", negative="", help="Print one JSON object on stdout.")] = False,
) -> int:
    """Start the local Prefect server in the background (SQLite under your Prefect home) and a worker."""
    try:
        info = start_server(port, wait=True, with_worker=worker)
    except ServerError as exc:
        print_error(str(exc))  # it may quote the server's log, brackets and all
        return EXIT_FAILED
    if as_json:
        sys.stdout.write(json.dumps(info.to_dict()) + "\n")
        return EXIT_OK
    _describe(info)
    if info.startup_s is not None:
        out_console.print(f"started in {info.startup_s:.1f} s", highlight=False)
    else:
        out_console.print("(it was already running)", highlight=False)
    out_console.print(
        f"Use it from other tools with: export PREFECT_API_URL={info.api_url}", highlight=False, markup=False
    )
    return EXIT_OK


@server_app.command
def stop(*, port: PortOption = None) -> int:
    """Stop the worker and the server that `switchboard server start` (or `switchboard run`) started."""
    before = server_status(port)
    info = stop_server(port)
    if info.running:
        print_error(
            f"a Prefect server still answers on {info.api_url}; Switchboard did not start it, so it left it alone"
        )
        return EXIT_FAILED
    stopped = [name for name, pid in (("worker", before.worker_pid), ("server", before.pid)) if pid]
    out_console.print(f"stopped {' and '.join(stopped)}" if stopped else "no server was running", highlight=False)
    return EXIT_OK


@server_app.command
def status(
    *,
    port: PortOption = None,
    as_json: Annotated[bool, Parameter(name="--json", negative="", help="Print one JSON object on stdout.")] = False,
) -> int:
    """Show whether the local Prefect server and its worker run; exit 0 if the server answers, else 1."""
    info = server_status(port)
    if as_json:
        sys.stdout.write(json.dumps(info.to_dict()) + "\n")
    else:
        _describe(info)
    return EXIT_OK if info.running else EXIT_FAILED


__all__ = ["server_app"]
