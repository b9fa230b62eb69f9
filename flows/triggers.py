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
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flows.spec import BatchSpec, load_spec, parse_spec
from routing.config import check_strategy, load_config

DEFAULT_DEPLOYMENT = "process-batch/process-batch"
INLINE_SOURCE = "<inline spec>"

SpecInput = BatchSpec | Mapping[str, Any] | str | Path


def run_batch(
    spec: SpecInput, providers: str | Path | None = None, strategy: str | None = None, fresh: bool = False
) -> dict[str, Any]:
    """Run `process_batch` in this process and return its result: `{"run_id", "status", "totals"}`.

    Without PREFECT_API_URL Prefect runs in ephemeral mode (slow to start, partial history): for real use
    start a server first (`switchboard server start`) and export its URL.
    """
    from flows.batch import run_batch_flow
    from routing.config import load_config

    batch, parameters = _parameters(spec, providers, strategy)
    if not isinstance(spec, str | Path):
        parameters["spec"] = batch  # in process, the validated spec travels as is; a path stays a path
    return run_batch_flow(load_config(parameters.get("providers")), fresh=fresh, **parameters)


def submit_batch(
    spec: SpecInput,
    providers: str | Path | None = None,
    strategy: str | None = None,
    *,
    fresh: bool = False,
    deployment: str = DEFAULT_DEPLOYMENT,
    timeout: float | None = 0,
) -> str:
    """Trigger the `process-batch` deployment and return the new flow run's id.

    `timeout=0` returns as soon as the run is scheduled (a worker on the `switchboard` pool picks it up);
    `timeout=None` waits until it is final, any other number waits at most that many seconds.
    """
    from prefect.deployments import run_deployment

    _, parameters = _parameters(spec, providers, strategy)
    if fresh:
        parameters["fresh"] = True
    flow_run = run_deployment(name=deployment, parameters=parameters, timeout=timeout)
    return str(flow_run.id)


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


__all__ = ["DEFAULT_DEPLOYMENT", "SpecInput", "run_batch", "submit_batch", "validate_spec"]
