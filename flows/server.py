"""A managed local Prefect server (and a worker for the `switchboard` pool), Switchboard's embedded default.

Without a server, Prefect's ephemeral mode starts a temporary one per process, which costs ~10 s per run,
keeps only part of the task-run history and prints shutdown tracebacks (PREFECT.md gotcha 1). So every batch
started in this process (`switchboard run`, `flows.triggers.run_batch`) first calls `prefect_api()`:
`PREFECT_API_URL` if set (checked to answer, so a stale URL is one clear error, not a traceback mid-run),
Prefect's ephemeral mode if `SWITCHBOARD_PREFECT=ephemeral`, else `ensure_local_server()`, which reuses a
server answering on 127.0.0.1:PORT or starts one detached (its own session, so Ctrl-C in the user's terminal
leaves it alone), with SQLite under the user's Prefect home. Logs and pid files live in Switchboard's data dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ledger import data_dir as _ledger_data_dir
from providers import pid_alive, terminate_group

DEFAULT_PORT = 4200
PORT_ENV = "SWITCHBOARD_PREFECT_PORT"
# `SWITCHBOARD_PREFECT=ephemeral`: no managed server, Prefect's own temporary one per process (opt-in).
PREFECT_MODE_ENV = "SWITCHBOARD_PREFECT"
# How long a configured PREFECT_API_URL gets to answer its health check before a run starts.
PROBE_TIMEOUT_S = 2.0
HOST = "127.0.0.1"
POOL_NAME = "switchboard"
# `prefect server start` (SQLite) answers /api/health after ~5 s on our 2-core machines; a loaded CI box is slower.
STARTUP_TIMEOUT_S = 90.0
STOP_GRACE_S = 10.0
LOG_ROTATE_BYTES = 20 * 1024 * 1024


class ServerError(RuntimeError):
    """The local Prefect server (or its worker) could not be started or stopped."""


class PrefectUnreachable(RuntimeError):
    """PREFECT_API_URL names a Prefect API that does not answer; the message says what to do, in one line."""


@dataclass(frozen=True)
class ServerPaths:
    """Where the managed server keeps its state; every field is injectable for tests."""

    port: int
    data_dir: Path
    prefect_home: Path

    @property
    def server_log(self) -> Path:
        return self.data_dir / "prefect-server.log"

    @property
    def server_pid(self) -> Path:
        return self.data_dir / "prefect-server.pid"

    @property
    def worker_log(self) -> Path:
        return self.data_dir / "prefect-worker.log"

    @property
    def worker_pid(self) -> Path:
        return self.data_dir / "prefect-worker.pid"

    @property
    def lock(self) -> Path:
        return self.data_dir / "prefect-server.lock"


@dataclass(frozen=True)
class ServerInfo:
    """What `switchboard server status` reports."""

    port: int
    api_url: str
    ui_url: str
    running: bool  # something answers /api/health on the port
    managed: bool  # ... and it is the server Switchboard started (its pid file names a live process)
    pid: int | None
    worker_pid: int | None
    pool: str
    server_log: Path
    worker_log: Path
    prefect_home: Path
    startup_s: float | None = None  # set by start_server when it started the server and waited for it

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def resolve_port(port: int | None = None) -> int:
    return port or int(os.environ.get(PORT_ENV) or DEFAULT_PORT)


def api_url(port: int | None = None) -> str:
    return f"http://{HOST}:{resolve_port(port)}/api"


def ui_url(port: int | None = None) -> str:
    return f"http://{HOST}:{resolve_port(port)}"


def ui_url_for_flow_run(flow_run_id: str, port: int | None = None) -> str:
    return f"{ui_url(port)}/runs/flow-run/{flow_run_id}"


def server_paths(
    port: int | None = None, *, data_dir: Path | None = None, prefect_home: Path | None = None
) -> ServerPaths:
    home = prefect_home or Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")
    return ServerPaths(
        port=resolve_port(port),
        data_dir=(data_dir or _ledger_data_dir()).expanduser(),
        prefect_home=home.expanduser(),
    )


def is_healthy(port: int | None = None, timeout: float = 1.0) -> bool:
    try:
        # trust_env=False: a proxy from the environment must never see (or swallow) loopback traffic.
        return httpx.get(f"{api_url(port)}/health", timeout=timeout, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def server_status(
    port: int | None = None, *, data_dir: Path | None = None, prefect_home: Path | None = None
) -> ServerInfo:
    return _status(server_paths(port, data_dir=data_dir, prefect_home=prefect_home))


def start_server(
    port: int | None = None,
    *,
    wait: bool = True,
    with_worker: bool = False,
    data_dir: Path | None = None,
    prefect_home: Path | None = None,
    timeout: float = STARTUP_TIMEOUT_S,
) -> ServerInfo:
    """Start the local server unless one already answers on the port; optionally a worker for the pool too.

    With `wait`, returns once /api/health answers (raising ServerError with the log's tail if the server
    dies or times out); `startup_s` in the result says how long that took.
    """
    paths = server_paths(port, data_dir=data_dir, prefect_home=prefect_home)
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    startup_s: float | None = None
    # A lock so two `switchboard run`s starting at once don't both spawn a server on the same port.
    with _locked(paths.lock):
        if not is_healthy(paths.port) and _live_pid(paths.server_pid) is None:
            if _port_taken(paths.port):
                raise ServerError(f"port {paths.port} on {HOST} is in use by something that is not a Prefect server")
            began = time.monotonic()
            _spawn(_server_command(paths.port), paths.server_log, paths.server_pid, _server_env(paths), paths)
            if wait:
                _wait_healthy(paths, timeout)
                startup_s = time.monotonic() - began
        elif wait and not is_healthy(paths.port):
            _wait_healthy(paths, timeout)  # started by someone else a moment ago
    if with_worker:
        if not is_healthy(paths.port):
            _wait_healthy(paths, timeout)
        start_worker(paths)
    info = _status(paths)
    return ServerInfo(**{**asdict(info), "startup_s": startup_s})


def start_worker(paths: ServerPaths) -> int:
    """Create the `switchboard` process pool if missing and start a detached worker on it; returns its pid."""
    running = _live_pid(paths.worker_pid)
    if running is not None:
        return running
    ensure_work_pool(api_url(paths.port))
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL_NAME, "--type", "process"]
    env = {**_server_env(paths), "PREFECT_API_URL": api_url(paths.port)}
    return _spawn(command, paths.worker_log, paths.worker_pid, env, paths)


def ensure_work_pool(api: str, name: str = POOL_NAME) -> bool:
    """Create the process work pool `name` if it does not exist; True if it was created."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with SyncPrefectClient(api) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            pass
        try:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name, type="process", base_job_template=ProcessWorker.get_default_base_job_template()
                )
            )
        except ObjectAlreadyExists:
            return False
        return True


def stop_server(
    port: int | None = None, *, data_dir: Path | None = None, prefect_home: Path | None = None
) -> ServerInfo:
    """Stop the worker, then the server Switchboard started (each with its whole process group)."""
    paths = server_paths(port, data_dir=data_dir, prefect_home=prefect_home)
    with _locked(paths.lock):
        _terminate(paths.worker_pid)
        _terminate(paths.server_pid)
    return _status(paths)


def ensure_local_server(
    port: int | None = None, *, data_dir: Path | None = None, prefect_home: Path | None = None
) -> str:
    """The local server's API URL, starting one in the background (and waiting for it) if none answers.

    It does not look at PREFECT_API_URL: call it only when that is unset, then export the URL it returns.
    """
    paths = server_paths(port, data_dir=data_dir, prefect_home=prefect_home)
    if not is_healthy(paths.port):
        start_server(paths.port, wait=True, data_dir=paths.data_dir, prefect_home=paths.prefect_home)
    return api_url(paths.port)


# --- which Prefect API a run in this process reports to ----------------------------------------------


def ephemeral_requested() -> bool:
    return os.environ.get(PREFECT_MODE_ENV, "").strip().lower() == "ephemeral"


def prefect_api(configured: str | None, *, announce: Callable[[str], None] | None = None) -> str | None:
    """The Prefect API a batch run in this process reports to, checked or started before anything is written.

    `configured` is the PREFECT_API_URL in effect (the environment's, or Prefect's settings once imported).
    - set: returned once `/health` answers, else PrefectUnreachable (a stale URL after `switchboard server stop`
      or a reboot would otherwise fail deep inside the flow, after the run was recorded);
    - else None with SWITCHBOARD_PREFECT=ephemeral (Prefect's temporary server, opt-in);
    - else the managed local server's URL, started (and waited for) if none answers; ServerError if it cannot
      start. `announce` is told first, since that takes 5-15 s.
    """
    if configured:
        check_api(configured)
        return configured
    if ephemeral_requested():
        # Prefect gives its temporary server 20 s to start, which a busy machine (a CI box, several runs at
        # once) misses; give it the managed server's allowance unless the user chose one.
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(int(STARTUP_TIMEOUT_S)))
        return None
    if not is_healthy() and announce is not None:
        announce("starting the local Prefect server (once; `switchboard server stop` stops it) ...")
    return ensure_local_server()


def connect_prefect(*, announce: Callable[[str], None] | None = None) -> str | None:
    """`prefect_api` for a process that has not imported prefect yet: exports the URL it settles on, so
    Prefect (imported later) and the processes this one starts use it."""
    api = prefect_api(os.environ.get("PREFECT_API_URL") or None, announce=announce)
    if api is not None:
        os.environ["PREFECT_API_URL"] = api
    return api


@contextlib.contextmanager
def prefect_api_for_block(*, announce: Callable[[str], None] | None = None) -> Iterator[str | None]:
    """`prefect_api` for a process that may have imported prefect already (a caller of `run_batch`): Prefect's
    settings, and the environment that processes started meanwhile inherit (Dask workers), use the API it
    settles on for the duration of the block; both are restored afterwards."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    configured = get_current_settings().api.url
    api = prefect_api(configured, announce=announce)
    if api is None or api == configured:
        yield api
        return
    saved = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api
    try:
        with temporary_settings(updates={PREFECT_API_URL: api}):
            yield api
    finally:
        if saved is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = saved


def quiet_ephemeral_shutdown(data_dir: Path | None = None) -> Path | None:
    """In ephemeral mode, hide the tracebacks Prefect's temporary server prints when it is stopped at exit.

    Prefect SIGTERMs that server (a subprocess sharing our stderr) while its services still flush events; the
    `prefect.server` loggers are kept quiet by PREFECT_SERVER_LOGGING_LEVEL, but SQLAlchemy's pool then logs
    "Exception during reset or similar" with a CancelledError traceback through the root logger. Only a real
    server avoids the cause (PREFECT.md gotcha 1); ephemeral mode is opt-in, so there we hide it: a copy of
    Prefect's logging config with `sqlalchemy.pool` at CRITICAL, used by this process and, through the
    environment, by the temporary server. A PREFECT_LOGGING_SETTINGS_PATH of the user's is left alone.
    Must run before prefect is imported; returns the file it set, if any.
    """
    if os.environ.get("PREFECT_LOGGING_SETTINGS_PATH"):
        return None
    import importlib.util

    import yaml

    found = importlib.util.find_spec("prefect")
    if found is None or not found.submodule_search_locations:
        return None
    default = Path(next(iter(found.submodule_search_locations))) / "logging" / "logging.yml"
    try:
        config = yaml.safe_load(default.read_text())
    except (OSError, yaml.YAMLError):
        return None
    config.setdefault("loggers", {})["sqlalchemy.pool"] = {"level": "CRITICAL"}
    target = (data_dir or _ledger_data_dir()).expanduser() / "prefect-logging-ephemeral.yml"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: another run starting at the same moment never reads half a file.
        scratch = target.with_name(f".{target.name}.{os.getpid()}")
        scratch.write_text(yaml.safe_dump(config, sort_keys=False))
        scratch.replace(target)
    except OSError:
        return None
    os.environ["PREFECT_LOGGING_SETTINGS_PATH"] = str(target)
    return target


def check_api(url: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise PrefectUnreachable (one line: what failed and what to do) unless `url` answers like a Prefect API."""
    try:
        # A proxy from the environment must never see (or swallow) loopback traffic; a remote API may need it.
        response = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout, trust_env=not _is_loopback(url))
    except httpx.HTTPError as exc:
        reason = f"no answer within {timeout:.0f} s" if isinstance(exc, httpx.TimeoutException) else _why(exc)
        raise PrefectUnreachable(
            f"no Prefect server answers at PREFECT_API_URL={url} ({reason}); {_what_to_do(url)}"
        ) from None
    # 401/403: a Prefect Cloud workspace that wants the API key Prefect itself sends; it does answer.
    if response.status_code not in (200, 401, 403):
        raise PrefectUnreachable(
            f"PREFECT_API_URL={url} answers HTTP {response.status_code} to /health, not like a Prefect API; "
            f"{_what_to_do(url)}"
        )


def _what_to_do(url: str) -> str:
    ours = url.rstrip("/") == api_url()
    start = "start it with `switchboard server start`" if ours else "start that server"
    return (
        f"{start}, or unset PREFECT_API_URL (Switchboard then starts its own local server), "
        f"or set {PREFECT_MODE_ENV}=ephemeral with PREFECT_API_URL unset to run without a server"
    )


def _why(exc: httpx.HTTPError) -> str:
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    text = str(cause) or type(cause).__name__
    return "connection refused" if "refused" in text.lower() else text


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


# --- processes -------------------------------------------------------------------------------------


def _server_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "prefect",
        "server",
        "start",
        "--host",
        HOST,
        "--port",
        str(port),
        "--analytics-off",
    ]


def _server_env(paths: ServerPaths) -> dict[str, str]:
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(paths.prefect_home)
    # No telemetry and no phoning home from the server: our machines reach 127.0.0.1 only.
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT"] = "false"
    # A server must not point at some other API (e.g. an inherited PREFECT_API_URL of another server).
    env["PREFECT_API_URL"] = api_url(paths.port)
    if paths.port != DEFAULT_PORT:
        # The UI bundle calls 127.0.0.1:4200/api unless told otherwise, and then shows "Can't connect".
        env["PREFECT_SERVER_UI_API_URL"] = env["PREFECT_UI_API_URL"] = api_url(paths.port)
    return env


def _spawn(command: list[str], log: Path, pid_file: Path, env: dict[str, str], paths: ServerPaths) -> int:
    with contextlib.suppress(OSError):
        if log.stat().st_size > LOG_ROTATE_BYTES:  # keep one previous log, not an ever-growing file
            log.replace(log.with_suffix(log.suffix + ".1"))
    with log.open("ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {' '.join(command)}\n".encode())
        out.flush()
        # start_new_session: its own process group, so Ctrl-C in the terminal that started it (e.g. during
        # `switchboard run`) does not reach it, and stopping it can take the whole group down.
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=paths.data_dir,
            start_new_session=True,
        )
    pid_file.write_text(json.dumps({"pid": proc.pid, "port": paths.port, "command": command}))
    # Popen objects warn when collected while the child still runs; this child is meant to outlive us.
    proc.returncode = 0
    return proc.pid


def _wait_healthy(paths: ServerPaths, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_healthy(paths.port, timeout=2.0):
            return
        if paths.server_pid.exists() and _live_pid(paths.server_pid) is None:
            raise ServerError(f"the Prefect server exited during start-up; log {paths.server_log}:\n{_tail(paths)}")
        time.sleep(0.1)
    raise ServerError(
        f"the Prefect server did not answer {api_url(paths.port)}/health within {timeout:.0f} s; "
        f"log {paths.server_log}:\n{_tail(paths)}"
    )


def _tail(paths: ServerPaths, lines: int = 20) -> str:
    try:
        return "\n".join(paths.server_log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(json.loads(pid_file.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _live_pid(pid_file: Path) -> int | None:
    pid = _read_pid(pid_file)
    if pid is None or not pid_alive(pid):
        return None
    return pid


def _terminate(pid_file: Path) -> None:
    """Stop the process group named by the pid file (SIGTERM, then SIGKILL after a grace period)."""
    pid = _live_pid(pid_file)
    if pid is not None:
        terminate_group(pid, STOP_GRACE_S)
    pid_file.unlink(missing_ok=True)


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _status(paths: ServerPaths) -> ServerInfo:
    pid = _live_pid(paths.server_pid)
    return ServerInfo(
        port=paths.port,
        api_url=api_url(paths.port),
        ui_url=ui_url(paths.port),
        running=is_healthy(paths.port),
        managed=pid is not None,
        pid=pid,
        worker_pid=_live_pid(paths.worker_pid),
        pool=POOL_NAME,
        server_log=paths.server_log,
        worker_log=paths.worker_log,
        prefect_home=paths.prefect_home,
    )


__all__ = [
    "DEFAULT_PORT",
    "POOL_NAME",
    "PORT_ENV",
    "PREFECT_MODE_ENV",
    "PrefectUnreachable",
    "ServerError",
    "ServerInfo",
    "ServerPaths",
    "api_url",
    "check_api",
    "connect_prefect",
    "ensure_local_server",
    "ensure_work_pool",
    "ephemeral_requested",
    "is_healthy",
    "prefect_api",
    "prefect_api_for_block",
    "quiet_ephemeral_shutdown",
    "resolve_port",
    "server_paths",
    "server_status",
    "start_server",
    "start_worker",
    "stop_server",
    "ui_url",
    "ui_url_for_flow_run",
]
