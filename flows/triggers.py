"""Starting batches from Python: `run_batch` runs one here and now, `submit_batch` hands one to a worker.

```python
from flows.triggers import run_batch, submit_batch

result = run_batch("examples/pr-review.yaml")          # blocks; {"run_id", "status", "totals"}
flow_run_id = submit_batch({"name": "nightly", "tasks": [...]}, strategy="cost_based")
```

Both validate everything locally first (spec, providers file, strategy) and raise `InputError`
(`SpecError`, `ConfigError`) or `ValueError` before anything runs or reaches the server. A spec is a path
(`str` / `Path`) or a `BatchSpec` / mapping (sent inline). A path given to `submit_batch` is made absolute
here and read by the worker, so it must exist on the worker's machine too (the same checkout, a shared disk).

`run_batch` reports to the same Prefect API as `switchboard run` (flows.server.prefect_api): PREFECT_API_URL
if set (PrefectUnreachable if it does not answer), else Switchboard's local server, started in the background
if needed (ServerError if it cannot start), or Prefect's ephemeral mode with SWITCHBOARD_PREFECT=ephemeral.
`submit_batch` talks to the configured PREFECT_API_URL and raises DeploymentNotFound for a deployment that
is not there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from batches import BatchSpec, load_spec, parse_spec
from flows.server import prefect_api_for_block
from flows.task_runners import runner_problem
from routing import ConfigError, check_strategy, load_config

DEFAULT_DEPLOYMENT = "process-batch/process-batch"
INLINE_SOURCE = "<inline spec>"
DEPLOY_HINT = "deploy with `prefect --no-prompt deploy --all` from the project root"

SpecInput = BatchSpec | Mapping[str, Any] | str | Path
Mode = Literal["auto", "per_node", "chunked"]
logger = logging.getLogger("switchboard.triggers")


class DeploymentNotFound(LookupError):
    """The Prefect API has no deployment of that name; the message names the API and how to deploy."""


def run_batch(
    spec: SpecInput,
    providers: str | Path | None = None,
    strategy: str | None = None,
    fresh: bool = False,
    *,
    mode: Mode = "auto",
) -> dict[str, Any]:
    """Run `process_batch` in this process and return its result: `{"run_id", "status", "totals"}`.

    It reports to the Prefect API `switchboard run` uses (see the module's docstring), so the run keeps its
    full task history and shows in the UI; Prefect's ephemeral mode only with SWITCHBOARD_PREFECT=ephemeral.
    """
    # flows.batch imports Prefect, which reads its settings when imported: only after prefect_api_for_block
    # below has chosen the API (and the CLI imports this module before it sets Prefect's environment).
    from flows.batch import run_batch_flow

    batch, parameters = _parameters(spec, providers, strategy)
    if not isinstance(spec, str | Path):
        parameters["spec"] = batch  # in process, the validated spec travels as is; a path stays a path
    config = load_config(parameters.get("providers"))
    with prefect_api_for_block(announce=logger.warning) as api:
        problem = runner_problem(config.runner, has_server=api is not None)
        if problem is not None:  # before the flow: nothing is written
            raise ConfigError(config.source, [problem])
        return run_batch_flow(config, fresh=fresh, mode=mode, **parameters)


def submit_batch(
    spec: SpecInput,
    providers: str | Path | None = None,
    strategy: str | None = None,
    *,
    fresh: bool = False,
    mode: Mode = "auto",
    deployment: str = DEFAULT_DEPLOYMENT,
    timeout: float | None = 0,
) -> str:
    """Trigger the `process-batch` deployment and return the new flow run's id.

    `timeout=0` returns as soon as the run is scheduled (a worker on the `switchboard` pool picks it up);
    `timeout=None` waits until it is final, any other number waits at most that many seconds. `fresh` and
    `mode` become the flow run's parameters of the same names (sent only when not the default).
    """
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import get_current_settings

    _, parameters = _parameters(spec, providers, strategy)
    if fresh:
        parameters["fresh"] = True
    if mode != "auto":
        parameters["mode"] = check_mode(mode)
    check_deployment_name(deployment)
    try:
        # Prefect reads the deployment first and raises ObjectNotFound before it creates anything.
        flow_run = run_deployment(name=deployment, parameters=parameters, timeout=timeout)
    except ObjectNotFound:
        api = get_current_settings().api.url or "Prefect's temporary server (PREFECT_API_URL is not set)"
        raise DeploymentNotFound(f"no deployment {deployment!r} on {api}; {DEPLOY_HINT}") from None
    return str(flow_run.id)


def check_deployment_name(name: str) -> str:
    """A deployment is named FLOW/DEPLOYMENT (or given by its id); ValueError otherwise."""
    try:
        UUID(name)
        return name
    except ValueError:
        pass
    flow_name, slash, deployment_name = name.partition("/")
    if not (slash and flow_name and deployment_name) or "/" in deployment_name:
        raise ValueError(f"deployment {name!r}: expected FLOW/DEPLOYMENT, e.g. {DEFAULT_DEPLOYMENT}")
    return name


def check_mode(mode: str) -> str:
    if mode not in ("auto", "per_node", "chunked"):
        raise ValueError(f"unknown mode {mode!r}; choose one of auto, per_node, chunked")
    return mode


def validate_spec(spec: SpecInput) -> BatchSpec:
    """Load and check a spec (ids, dependencies, cycles, values) the way `switchboard run` does."""
    if isinstance(spec, BatchSpec):
        # A BatchSpec built directly skipped the graph checks that parse_spec adds.
        return parse_spec(spec.model_dump(mode="json"), INLINE_SOURCE)
    if isinstance(spec, Mapping):
        return parse_spec(dict(spec), INLINE_SOURCE)
    if isinstance(spec, str | Path):
        return load_spec(spec)
    raise TypeError(f"spec must be a path, a BatchSpec or a mapping, not {type(spec).__name__}")


def _parameters(
    spec: SpecInput, providers: str | Path | None, strategy: str | None
) -> tuple[BatchSpec, dict[str, Any]]:
    """The flow's parameters, validated; paths made absolute so they mean the same on the worker."""
    batch = validate_spec(spec)
    parameters: dict[str, Any] = {
        "spec": str(_absolute(spec)) if isinstance(spec, str | Path) else batch.model_dump(mode="json")
    }
    if providers is not None:
        load_config(_absolute(providers))  # raises ConfigError naming the file and field
        parameters["providers"] = str(_absolute(providers))
    if strategy is not None:
        parameters["strategy"] = check_strategy(strategy)
    return batch, parameters


def _absolute(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


__all__ = [
    "DEFAULT_DEPLOYMENT",
    "DeploymentNotFound",
    "SpecInput",
    "check_deployment_name",
    "run_batch",
    "submit_batch",
    "validate_spec",
]
