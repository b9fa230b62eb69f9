"""The task runner the batch flow uses, chosen by the providers file's `runner:` settings.

`thread` (default): Prefect's ThreadPoolTaskRunner with an explicit cap; Prefect's own default is unbounded
(PREFECT.md gotcha 11) and provider calls are I/O bound, so a modest pool is enough.
`dask`: prefect-dask's DaskTaskRunner on a LocalCluster of processes or an existing scheduler. It needs a
real Prefect server: in ephemeral mode every Dask worker process starts its own temporary server (measured
10 s instead of 3 s for 8 short tasks, PREFECT.md gotcha 3). `runner_problem` says so before a run starts.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger import data_dir
from routing import RunnerSettings

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

DASK_EXTRA_HINT = "pip install 'switchboard[dask]'"
# The scheduler always serves HTTP (health, metrics; the dashboard too unless told not to). Given no address
# it takes 8787 whatever `dashboard_address=None` says; on loopback, on a port the OS picks, it bothers no one.
SCHEDULER_HTTP_ADDRESS = "127.0.0.1:0"


class TaskRunnerError(RuntimeError):
    """The configured task runner cannot be used here; the message says what to do."""


def runner_problem(settings: RunnerSettings, *, has_server: bool) -> str | None:
    """Why the configured runner cannot run a batch here (naming the field), or None. Cheap and Prefect-free,
    so `switchboard run` can refuse before anything is written."""
    if settings.kind != "dask":
        return None
    if not _installed("prefect_dask"):
        return f"runner.kind: 'dask' needs the prefect-dask package, which is not installed: {DASK_EXTRA_HINT}"
    if not has_server:
        return (
            "runner.kind: 'dask' needs a Prefect server, and SWITCHBOARD_PREFECT=ephemeral runs without one "
            "(each Dask worker process would start its own temporary server): unset SWITCHBOARD_PREFECT "
            "(Switchboard then uses its local server) or set PREFECT_API_URL"
        )
    return None


def _installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it (dask and distributed take ~1 s)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: already imported without a spec (a stand-in)
        return sys.modules.get(module) is not None


def make_task_runner(settings: RunnerSettings, *, scratch: Path | None = None) -> TaskRunner[Any]:
    """A fresh task runner for one flow run (runners are not reused across runs)."""
    from prefect.settings import get_current_settings
    from prefect.task_runners import ThreadPoolTaskRunner

    if settings.kind == "thread":
        return ThreadPoolTaskRunner(max_workers=settings.max_workers)
    if settings.kind == "dask":
        problem = runner_problem(settings, has_server=bool(get_current_settings().api.url))
        if problem is not None:
            raise TaskRunnerError(problem)
        return _dask_runner(settings, scratch or data_dir() / "dask")
    raise TaskRunnerError(f"unknown runner kind {settings.kind!r}; use 'thread' or 'dask'")


def dask_log_level() -> int:
    """Dask's loggers follow Prefect's level: WARNING under `switchboard run` (INFO with --verbose), Prefect's
    INFO otherwise. Never chattier than WARNING unless Prefect itself is."""
    from prefect.settings import get_current_settings

    level = logging.getLevelName(str(get_current_settings().logging.level).upper())
    return level if isinstance(level, int) else logging.WARNING


def _dask_runner(settings: RunnerSettings, scratch: Path) -> TaskRunner[Any]:
    level = dask_log_level()
    # Dask reads DASK_* at import and its worker processes inherit the environment: scratch files go under our
    # data dir (it writes "dask-scratch-space" into the current directory otherwise) and `distributed` logs at
    # the level above in every process (a LocalCluster prints ~33 INFO lines per run otherwise).
    os.environ.setdefault("DASK_TEMPORARY_DIRECTORY", str(scratch / "tmp"))
    os.environ["DASK_LOGGING__DISTRIBUTED"] = logging.getLevelName(level).lower()
    logging.getLogger("distributed").setLevel(level)
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": settings.dask_workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": SCHEDULER_HTTP_ADDRESS,
            "scheduler_kwargs": {"dashboard": False},  # no web dashboard (bokeh), only the scheduler's own routes
            "host": "127.0.0.1",
            "local_directory": str(scratch / "scratch"),
            "silence_logs": level,
        },
    )


__all__ = [
    "DASK_EXTRA_HINT",
    "SCHEDULER_HTTP_ADDRESS",
    "TaskRunnerError",
    "dask_log_level",
    "make_task_runner",
    "runner_problem",
]
