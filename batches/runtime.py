"""Everything one batch run needs in this process: spec, config, ledger, providers, router and ledger writer."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from batches.deferred import DeferredCalls
from batches.overlay import OverlayFollower
from batches.ownership import this_owner
from batches.run_state import KnownState
from batches.spec import BatchSpec, load_spec
from batches.stopping import StopReason, run_stop
from ledger import Ledger, LedgerWriter, LimitStore, open_ledger, shown_url
from providers import ProviderConfig, SecretResolver, env_secrets, safe_url, utc_now
from routing import (
    ProviderRegistry,
    Router,
    RoutingObserver,
    RunInfo,
    SharedLimits,
    SwitchboardConfig,
    check_strategy,
    engine_loop,
    ledger_lookup,
    ledger_observer,
    load_config,
    parse_config,
    restore_router_state,
)


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
    # In the process that runs the run's flow, what its nodes know of the run (see batches.run_state); None in a
    # process that runs only some nodes (a Dask worker), whose nodes read the ledger.
    memory: KnownState | None = None
    # Follows the HTTP API's provider overlay while the run routes (batches.overlay).
    follower: OverlayFollower | None = None
    # The limits shared with every other routing process, through the ledger's database.
    shared: SharedLimits | None = None
    # Deferrable tasks' vendor batches (batches.deferred); None when no task may wait or no provider offers one.
    deferred: DeferredCalls | None = None

    def close(self) -> None:
        if self.deferred is not None:
            engine_loop().run(self.deferred.aclose(), cleanup=True)
        engine_loop().run(self.registry.aclose(), cleanup=True)
        self.writer.close()
        if self.shared is not None:
            self.shared.close()  # settles what this process's calls used
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


_runtimes: dict[str, BatchRuntime] = {}
_runtimes_lock = threading.Lock()
# What the nodes of a run whose ledger went away knew when it closed, until the CLI that started the run takes
# it (`lost_run_memory`) to print the run without the ledger. Only runs that lost their ledger are kept.
_lost_memory: dict[str, KnownState] = {}


def open_runtime(
    spec: BatchSpec,
    config: SwitchboardConfig,
    strategy: str,
    *,
    run_id: str,
    ledger: Ledger,
    observer: RoutingObserver | None = None,
    secrets: SecretResolver = env_secrets,
    home: bool = True,
) -> BatchRuntime:
    """Build providers and router for a run and make them findable by the nodes the run's flow starts.

    `secrets` resolves the providers' keys (env vars by default; flows/ adds Prefect Secret blocks). `home`:
    this process runs the run's flow, so every node of the run runs here (thread runner) or reports back here;
    it reads the run's state once and its nodes keep it up to date in memory.
    """
    observer = observer or ledger_observer(ledger)
    follower = OverlayFollower(ledger, config)
    config = follower.current()  # the API's providers over the file's
    registry = ProviderRegistry.from_configs(config.providers, secrets=secrets)
    for provider in registry:
        caps = provider.capabilities()
        ledger.upsert_provider(
            provider.provider_id,
            type_name=provider.type_name,
            priority=provider.config.priority,
            config=_storable_config(provider.config),
            capabilities={
                "task_types": None if caps.task_types is None else sorted(caps.task_types),
                "max_concurrency": caps.max_concurrency,
            },
        )
    # A ledger that cannot be reached mid-run stops the run (interrupted): its answers could only be spooled.
    writer = LedgerWriter(ledger, on_unreachable=lambda error: _ledger_lost(run_id, ledger))
    shared = SharedLimits(LimitStore(ledger.engine, owner=this_owner()))
    deferred = _deferred_calls(spec, registry, ledger, run_id)
    router = Router(
        registry,
        config,
        recorder=writer.submit,
        observer=observer,
        shared=shared,
        cache_lookup=ledger_lookup(ledger),
        deferral=deferred,
    )
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
        follower=follower,
        shared=shared,
        deferred=deferred,
    )
    with _runtimes_lock:
        _runtimes[run_id] = runtime
    return runtime


def _deferred_calls(spec: BatchSpec, registry: ProviderRegistry, ledger: Ledger, run_id: str) -> DeferredCalls | None:
    """Vendor batch work for a run with tasks that may wait and a provider with `batch:` on; else None (all live).
    Deadlines count from the run's start, so a resumed run keeps the deadlines its first start set."""
    may_wait = spec.deferrable or any(t.deadline is not None for t in spec.tasks)
    batching = any(getattr(p.config, "batch", None) is not None and p.config.batch.enabled for p in registry)
    if not (may_wait and batching):
        return None
    record = ledger.get_run(run_id)
    return DeferredCalls(ledger, run_id, record.started_at if record is not None else utc_now())


def _ledger_lost(run_id: str, ledger: Ledger) -> None:
    run_stop(run_id).request(StopReason.INTERRUPTED, f"the ledger at {shown_url(ledger.url)} cannot be reached")


def _storable_config(config: ProviderConfig) -> dict[str, Any]:
    """A provider's config as the ledger keeps it: never a credential (those written into base_url included)."""
    document = config.model_dump(mode="json")
    if document.get("base_url"):
        document["base_url"] = safe_url(document["base_url"])
    return document


class RuntimeRef(BaseModel):
    """What a node needs to find its run's runtime, or to rebuild it in another process (a Dask worker)."""

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


def runtime_for(ref: RuntimeRef, secrets: Callable[[], SecretResolver] = lambda: env_secrets) -> BatchRuntime:
    """The run's runtime in this process; built on first use in a process the flow did not start in, with the
    resolver `secrets` makes (called only then)."""
    with _runtimes_lock:
        runtime = _runtimes.get(ref.run_id)
    if runtime is not None:
        return runtime
    config = parse_config(ref.config, f"<config of run {ref.run_id}>")
    runtime = open_runtime(
        ref.spec, config, ref.strategy, run_id=ref.run_id, ledger=open_ledger(), secrets=secrets(), home=False
    )
    atexit.register(close_runtime, ref.run_id)
    return runtime


def close_runtime(run_id: str) -> None:
    with _runtimes_lock:
        runtime = _runtimes.pop(run_id, None)
    if runtime is not None:
        runtime.close()
        if runtime.writer.unreachable is not None and runtime.memory is not None:
            with _runtimes_lock:
                _lost_memory[run_id] = runtime.memory


def lost_run_memory(run_id: str) -> KnownState | None:
    """What this process's nodes knew of a run that lost its ledger (taken: asked once); None for any other."""
    with _runtimes_lock:
        return _lost_memory.pop(run_id, None)


__all__ = [
    "BatchRuntime",
    "RuntimeRef",
    "close_runtime",
    "lost_run_memory",
    "open_runtime",
    "resolve_inputs",
    "resolve_strategy",
    "runtime_for",
]
