"""Everything one batch run needs in this process: spec, config, ledger, providers and router."""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from flows.ownership import owner_active, this_owner
from flows.run_state import KnownState
from flows.secrets import secret_resolver
from flows.spec import BatchSpec, SpecError, load_spec
from ledger import Ledger, LedgerWriter, NewTask, default_database_url
from providers import Priority
from routing.config import SwitchboardConfig, check_strategy, load_config, parse_config
from routing.events import RoutingObserver
from routing.loop import engine_loop
from routing.registry import ProviderRegistry
from routing.restore import ledger_observer, restore_router_state
from routing.router import Router, RunInfo


@cache
def ledger_for(url: str) -> Ledger:
    """One ledger (engine and pool) per database per process."""
    return Ledger(url=url)


def default_ledger() -> Ledger:
    return ledger_for(default_database_url())


@dataclass
class BatchRuntime:
    spec: BatchSpec
    config: SwitchboardConfig
    ledger: Ledger
    registry: ProviderRegistry
    router: Router
    writer: LedgerWriter
    run: RunInfo
    observer: RoutingObserver
    # In the process that runs the run's flow, what its nodes know of the run (see flows.run_state); None in a
    # process that runs only some nodes (a Dask worker), whose nodes read the ledger.
    memory: KnownState | None = None

    def close(self) -> None:
        engine_loop().run(self.registry.aclose(), cleanup=True)
        self.writer.close()
        close_observer = getattr(self.observer, "close", None)
        if close_observer is not None:
            close_observer()  # e.g. flush the Prefect event forwarder


def resolve_inputs(
    spec: BatchSpec | str | Path, providers: str | Path | None, strategy: str | None
) -> tuple[BatchSpec, SwitchboardConfig, str]:
    """Load and validate everything before anything runs; raises InputError subclasses."""
    batch = spec if isinstance(spec, BatchSpec) else load_spec(spec)
    config = load_config(providers)
    return batch, config, resolve_strategy(config, strategy)


def resolve_strategy(config: SwitchboardConfig, strategy: str | None) -> str:
    """The run's strategy: the override if given (ValueError naming the choices if unknown), else the config's."""
    return check_strategy(strategy) if strategy else config.strategy


def start_run(ledger: Ledger, spec: BatchSpec, strategy: str, *, fresh: bool = False) -> tuple[str, bool]:
    """Start or resume the spec's run, claimed for this process; RunInProgress if another live one has it."""
    tasks = [
        NewTask(
            task_id=t.id,
            task_type=t.type,
            priority=(t.priority or spec.defaults.priority or Priority.NORMAL).value,
            team=t.team or spec.team,
        )
        for t in spec.tasks
    ]
    return ledger.start_or_resume_run(
        batch_name=spec.name,
        batch_hash=spec.content_hash(),
        team=spec.team,
        strategy=strategy,
        tasks=tasks,
        fresh=fresh,
        owner=this_owner(),
        owner_active=owner_active,
    )


def check_same_spec(ledger: Ledger, run_id: str, spec: BatchSpec) -> None:
    """A run handed to the flow by its starter must be of this spec (a spec file may change in between)."""
    run = ledger.get_run(run_id)
    if run is None:
        raise SpecError(spec.name, [f"run {run_id} is not in the ledger"])
    if run.batch_hash != spec.content_hash():
        raise SpecError(spec.name, [f"the spec changed after run {run_id} was started from it; run it again"])


_runtimes: dict[str, BatchRuntime] = {}
_runtimes_lock = threading.Lock()


def open_runtime(
    spec: BatchSpec,
    config: SwitchboardConfig,
    strategy: str,
    *,
    run_id: str,
    ledger: Ledger,
    observer: RoutingObserver | None = None,
    home: bool = True,
) -> BatchRuntime:
    """Build providers and router for a run and make them findable by the run's Prefect tasks.

    `home`: this process runs the run's flow, so every node of the run runs here (thread runner) or reports
    back here; it reads the run's state once and its nodes keep it up to date in memory.
    """
    observer = observer or ledger_observer(ledger)
    # Keys come from env vars, else Prefect Secret blocks of the same name (inside a flow run or with a server).
    registry = ProviderRegistry.from_configs(config.providers, secrets=secret_resolver())
    for provider in registry:
        caps = provider.capabilities()
        ledger.upsert_provider(
            provider.provider_id,
            type_name=provider.type_name,
            priority=provider.config.priority,
            config=provider.config.model_dump(mode="json"),
            capabilities={
                "task_types": None if caps.task_types is None else sorted(caps.task_types),
                "max_concurrency": caps.max_concurrency,
            },
        )
    writer = LedgerWriter(ledger)
    router = Router(registry, config, recorder=writer.submit, observer=observer)
    adaptive = strategy == "adaptive" or any(t.strategy == "adaptive" for t in spec.tasks)
    restore_router_state(router, ledger, run_id, scores=adaptive)
    runtime = BatchRuntime(
        spec=spec,
        config=config,
        ledger=ledger,
        registry=registry,
        router=router,
        writer=writer,
        run=RunInfo(run_id=run_id, strategy=strategy, team=spec.team),
        observer=observer,
        memory=KnownState.read(ledger, run_id) if home else None,
    )
    with _runtimes_lock:
        _runtimes[run_id] = runtime
    return runtime


class RuntimeRef(BaseModel):
    """What a Prefect task needs to find its run's runtime, or to rebuild it in another process (a Dask worker)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    spec: BatchSpec
    config: dict[str, Any]  # the validated providers config, as a document
    strategy: str

    @classmethod
    def of(cls, runtime: BatchRuntime) -> RuntimeRef:
        return cls(
            run_id=runtime.run.run_id,
            spec=runtime.spec,
            config=runtime.config.model_dump(mode="json"),
            strategy=runtime.run.strategy,
        )


def runtime_for(ref: RuntimeRef) -> BatchRuntime:
    """The run's runtime in this process; built on first use in a process the flow did not start in."""
    with _runtimes_lock:
        runtime = _runtimes.get(ref.run_id)
    if runtime is not None:
        return runtime
    config = parse_config(ref.config, f"<config of run {ref.run_id}>")
    runtime = open_runtime(ref.spec, config, ref.strategy, run_id=ref.run_id, ledger=default_ledger(), home=False)
    atexit.register(close_runtime, ref.run_id)
    return runtime


def close_runtime(run_id: str) -> None:
    with _runtimes_lock:
        runtime = _runtimes.pop(run_id, None)
    if runtime is not None:
        runtime.close()
