"""The task runner the batch flow uses, chosen by the providers file's `runner:` settings.

`thread` (default): Prefect's ThreadPoolTaskRunner with an explicit cap; Prefect's own default is unbounded
(PREFECT.md gotcha 11) and provider calls are I/O bound, so a modest pool is enough.
`dask`: prefect-dask's DaskTaskRunner on a LocalCluster of processes or an existing scheduler. It needs a
real Prefect server: in ephemeral mode every Dask worker process starts its own temporary server (measured
10 s instead of 3 s for 8 short tasks, PREFECT.md gotcha 3).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from prefect.settings import get_current_settings
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from ledger import data_dir
from routing.config import RunnerSettings

DASK_EXTRA_HINT = "pip install 'switchboard[dask]'"


class TaskRunnerError(RuntimeError):
    """The configured task runner cannot be used here; the message says what to do."""


def make_task_runner(settings: RunnerSettings, *, scratch: Path | None = None) -> TaskRunner[Any]:
    """A fresh task runner for one flow run (runners are not reused across runs)."""
    if settings.kind == "thread":
        return ThreadPoolTaskRunner(max_workers=settings.max_workers)
    if settings.kind == "dask":
        return _dask_runner(settings, scratch or data_dir() / "dask")
    raise TaskRunnerError(f"unknown runner kind {settings.kind!r}; use 'thread' or 'dask'")


def _dask_runner(settings: RunnerSettings, scratch: Path) -> TaskRunner[Any]:
    # Dask reads DASK_* at import and its worker processes inherit the environment; without this it writes
    # "dask-scratch-space" into the current directory.
    os.environ.setdefault("DASK_TEMPORARY_DIRECTORY", str(scratch / "tmp"))
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        raise TaskRunnerError(
            f"runner.kind 'dask' needs the prefect-dask package, which is not installed: {DASK_EXTRA_HINT}"
        ) from exc
    if not get_current_settings().api.url:
        raise TaskRunnerError(
            "runner.kind 'dask' needs a Prefect server: set PREFECT_API_URL (e.g. run `switchboard server start` "
            "and export the URL it prints). Without one, each Dask worker process would start its own "
            "temporary Prefect server."
        )
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": settings.dask_workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,  # no web dashboard: nothing to serve, one less port
            "host": "127.0.0.1",
            "local_directory": str(scratch / "scratch"),
            "silence_logs": logging.WARNING,  # the cluster's INFO chatter would bury the run's own output
        },
    )


__all__ = ["DASK_EXTRA_HINT", "TaskRunnerError", "make_task_runner"]
