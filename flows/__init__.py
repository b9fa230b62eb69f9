"""Prefect only: the `process_batch`, `usage_report` and `provider_health` flows and their tasks, the task
runners, run artifacts, routing events as Prefect events, the heartbeat, cancelling a run (flows.cancelling), the
managed local Prefect server, Secret blocks for provider keys, and starting batches from Python (`flows.triggers`).

Names load on first use (PEP 562): most of these modules import Prefect, which reads its settings from the
environment when imported (the CLI sets them first) and takes about a second to import, so `import flows`, or
taking a Prefect-free name such as `flows.secret_resolver`, must not import it.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.batch import (
        batch_flow,
        choose_chunked,
        chunks,
        finish_run,
        process_batch,
        run_batch_flow,
    )
    from flows.cancelling import (
        CancelFailed,
        CancelOutcome,
        CancelResult,
        cancel_run,
        wait_until_ended,
    )
    from flows.events import (
        DEFAULT_KINDS,
        PrefectEventForwarder,
        circuit_opened_automation,
        prefect_event_name,
        resource_for,
    )
    from flows.following import FlowRunState, flow_run_state
    from flows.health_flow import (
        ARTIFACT_KEY,
        HEALTH_CHANGED,
        provider_health,
    )
    from flows.heartbeat import (
        flow_heartbeat,
        in_process_heartbeat,
    )
    from flows.report_flow import (
        artifact_key,
        summary_markdown,
        usage_report,
    )
    from flows.secrets import (
        PrefectSecretResolver,
        block_name,
        secret_resolver,
    )
    from flows.server import (
        DEFAULT_PORT,
        POOL_NAME,
        PORT_ENV,
        PREFECT_MODE_ENV,
        PrefectUnreachable,
        ServerError,
        ServerInfo,
        ServerPaths,
        api_url,
        check_api,
        connect_prefect,
        ensure_local_server,
        ensure_work_pool,
        ephemeral_requested,
        is_healthy,
        prefect_api,
        prefect_api_for_block,
        quiet_ephemeral_shutdown,
        resolve_port,
        server_paths,
        server_status,
        start_server,
        start_worker,
        stop_server,
        ui_url,
        ui_url_for_flow_run,
    )
    from flows.task_runners import (
        DASK_EXTRA_HINT,
        SCHEDULER_HTTP_ADDRESS,
        TaskRunnerError,
        dask_log_level,
        make_task_runner,
        runner_problem,
    )
    from flows.triggers import (
        DEFAULT_DEPLOYMENT,
        DeploymentNotFound,
        SpecInput,
        check_deployment_name,
        run_batch,
        submit_batch,
        validate_spec,
    )

# Public name -> the module that defines it, imported when the name is first asked for.
_LAZY: dict[str, str] = {
    "ARTIFACT_KEY": "flows.health_flow",
    "CancelFailed": "flows.cancelling",
    "FlowRunState": "flows.following",
    "flow_run_state": "flows.following",
    "CancelOutcome": "flows.cancelling",
    "CancelResult": "flows.cancelling",
    "cancel_run": "flows.cancelling",
    "wait_until_ended": "flows.cancelling",
    "DASK_EXTRA_HINT": "flows.task_runners",
    "DEFAULT_DEPLOYMENT": "flows.triggers",
    "DEFAULT_KINDS": "flows.events",
    "DEFAULT_PORT": "flows.server",
    "DeploymentNotFound": "flows.triggers",
    "HEALTH_CHANGED": "flows.health_flow",
    "POOL_NAME": "flows.server",
    "PORT_ENV": "flows.server",
    "PREFECT_MODE_ENV": "flows.server",
    "PrefectEventForwarder": "flows.events",
    "PrefectSecretResolver": "flows.secrets",
    "PrefectUnreachable": "flows.server",
    "SCHEDULER_HTTP_ADDRESS": "flows.task_runners",
    "ServerError": "flows.server",
    "ServerInfo": "flows.server",
    "ServerPaths": "flows.server",
    "SpecInput": "flows.triggers",
    "TaskRunnerError": "flows.task_runners",
    "api_url": "flows.server",
    "artifact_key": "flows.report_flow",
    "batch_flow": "flows.batch",
    "block_name": "flows.secrets",
    "check_api": "flows.server",
    "check_deployment_name": "flows.triggers",
    "choose_chunked": "flows.batch",
    "chunks": "flows.batch",
    "circuit_opened_automation": "flows.events",
    "connect_prefect": "flows.server",
    "dask_log_level": "flows.task_runners",
    "ensure_local_server": "flows.server",
    "ensure_work_pool": "flows.server",
    "ephemeral_requested": "flows.server",
    "finish_run": "flows.batch",
    "flow_heartbeat": "flows.heartbeat",
    "in_process_heartbeat": "flows.heartbeat",
    "is_healthy": "flows.server",
    "make_task_runner": "flows.task_runners",
    "prefect_api": "flows.server",
    "prefect_api_for_block": "flows.server",
    "prefect_event_name": "flows.events",
    "process_batch": "flows.batch",
    "provider_health": "flows.health_flow",
    "quiet_ephemeral_shutdown": "flows.server",
    "resolve_port": "flows.server",
    "resource_for": "flows.events",
    "run_batch": "flows.triggers",
    "run_batch_flow": "flows.batch",
    "runner_problem": "flows.task_runners",
    "secret_resolver": "flows.secrets",
    "server_paths": "flows.server",
    "server_status": "flows.server",
    "start_server": "flows.server",
    "start_worker": "flows.server",
    "stop_server": "flows.server",
    "submit_batch": "flows.triggers",
    "summary_markdown": "flows.report_flow",
    "ui_url": "flows.server",
    "ui_url_for_flow_run": "flows.server",
    "usage_report": "flows.report_flow",
    "validate_spec": "flows.triggers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ARTIFACT_KEY",
    "DASK_EXTRA_HINT",
    "DEFAULT_DEPLOYMENT",
    "DEFAULT_KINDS",
    "DEFAULT_PORT",
    "HEALTH_CHANGED",
    "POOL_NAME",
    "PORT_ENV",
    "PREFECT_MODE_ENV",
    "SCHEDULER_HTTP_ADDRESS",
    "CancelFailed",
    "CancelOutcome",
    "CancelResult",
    "DeploymentNotFound",
    "FlowRunState",
    "PrefectEventForwarder",
    "PrefectSecretResolver",
    "PrefectUnreachable",
    "ServerError",
    "ServerInfo",
    "ServerPaths",
    "SpecInput",
    "TaskRunnerError",
    "api_url",
    "artifact_key",
    "batch_flow",
    "block_name",
    "cancel_run",
    "check_api",
    "check_deployment_name",
    "choose_chunked",
    "chunks",
    "circuit_opened_automation",
    "connect_prefect",
    "dask_log_level",
    "ensure_local_server",
    "ensure_work_pool",
    "ephemeral_requested",
    "finish_run",
    "flow_heartbeat",
    "flow_run_state",
    "in_process_heartbeat",
    "is_healthy",
    "make_task_runner",
    "prefect_api",
    "prefect_api_for_block",
    "prefect_event_name",
    "process_batch",
    "provider_health",
    "quiet_ephemeral_shutdown",
    "resolve_port",
    "resource_for",
    "run_batch",
    "run_batch_flow",
    "runner_problem",
    "secret_resolver",
    "server_paths",
    "server_status",
    "start_server",
    "start_worker",
    "stop_server",
    "submit_batch",
    "summary_markdown",
    "ui_url",
    "ui_url_for_flow_run",
    "usage_report",
    "validate_spec",
    "wait_until_ended",
]
