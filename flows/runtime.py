"""Everything one batch run needs in this process: spec, config, ledger, providers and router."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from flows.spec import BatchSpec, load_spec
from ledger import Ledger, NewTask, default_database_url
from providers import Priority
from routing.config import SwitchboardConfig, check_strategy, load_config
from routing.loop import engine_loop
from routing.registry import ProviderRegistry
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
    run: RunInfo
    resumed: bool

    def close(self) -> None:
        engine_loop().run(self.registry.aclose(), cleanup=True)


def resolve_inputs(
    spec: BatchSpec | str | Path, providers: str | Path | None, strategy: str | None
) -> tuple[BatchSpec, SwitchboardConfig, str]:
    """Load and validate everything before anything runs; raises InputError subclasses."""
    batch = spec if isinstance(spec, BatchSpec) else load_spec(spec)
    config = load_config(providers)
    chosen = check_strategy(strategy) if strategy else config.strategy
    return batch, config, chosen


def start_run(ledger: Ledger, spec: BatchSpec, strategy: str, *, fresh: bool = False) -> tuple[str, bool]:
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
    )


_runtimes: dict[str, BatchRuntime] = {}
_runtimes_lock = threading.Lock()


def open_runtime(
    spec: BatchSpec, config: SwitchboardConfig, strategy: str, *, run_id: str, resumed: bool, ledger: Ledger
) -> BatchRuntime:
    """Build providers and router for a run and make them findable by the run's Prefect tasks."""
    registry = ProviderRegistry.from_configs(config.providers)
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
    router = Router(registry, recorder=lambda attempt: ledger.record_attempts([attempt]))
    runtime = BatchRuntime(
        spec=spec,
        config=config,
        ledger=ledger,
        registry=registry,
        router=router,
        run=RunInfo(run_id=run_id, strategy=strategy, team=spec.team),
        resumed=resumed,
    )
    with _runtimes_lock:
        _runtimes[run_id] = runtime
    return runtime


def runtime_for(run_id: str) -> BatchRuntime:
    with _runtimes_lock:
        return _runtimes[run_id]


def close_runtime(run_id: str) -> None:
    with _runtimes_lock:
        runtime = _runtimes.pop(run_id, None)
    if runtime is not None:
        runtime.close()
