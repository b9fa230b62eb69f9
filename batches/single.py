"""Tasks routed one at a time (the HTTP API's `POST /tasks`), through the same router, limits and ledger as
batches: one long-lived registry, router and ledger writer per process, every task recorded in the run of its
UTC day (`api-20261206`), its attempts committed before its answer is returned.

The router starts from what the ledger remembers (quota windows, circuits, blocks, today's spend) and reserves
against the same shared limits store as every batch's router (routing.shared), so what batches use counts
against these tasks and what these tasks use counts against batches, also while both run.
"""

from __future__ import annotations

import asyncio
import secrets as random_ids
from dataclasses import dataclass, field
from datetime import datetime

from batches.overlay import OverlayFollower
from batches.ownership import this_owner
from ledger import Ledger, LedgerWriter, LimitStore, NewTask, TaskOutcome
from providers import AITask, SecretResolver, env_secrets, utc_now
from routing import (
    ProviderRegistry,
    RoutedResult,
    Router,
    RoutingObserver,
    RunInfo,
    SharedLimits,
    SwitchboardConfig,
    adopt_providers,
    engine_loop,
    ledger_lookup,
    ledger_observer,
    restore_router_state,
)

API_RUN_PREFIX = "api-"
API_BATCH_NAME = "api"


def api_run_id(now: datetime | None = None) -> str:
    """The run that records tasks routed on their own on this UTC day."""
    return f"{API_RUN_PREFIX}{(now or utc_now()):%Y%m%d}"


def new_task_id() -> str:
    return f"t{utc_now():%H%M%S}-{random_ids.token_hex(4)}"


class TaskIdTaken(ValueError):
    """The day's run already has a task with this id."""


@dataclass(frozen=True)
class SingleResult:
    run_id: str
    task_id: str
    routed: RoutedResult

    @property
    def id(self) -> str:
        return f"{self.run_id}:{self.task_id}"


@dataclass
class TaskEngine:
    config: SwitchboardConfig
    ledger: Ledger
    registry: ProviderRegistry
    router: Router
    writer: LedgerWriter
    observer: RoutingObserver
    follower: OverlayFollower
    shared: SharedLimits | None = None
    _runs: set[str] = field(default_factory=set)

    @classmethod
    def open(
        cls,
        config: SwitchboardConfig,
        ledger: Ledger,
        *,
        secrets: SecretResolver = env_secrets,
        observer: RoutingObserver | None = None,
    ) -> TaskEngine:
        observer = observer or ledger_observer(ledger)
        follower = OverlayFollower(ledger, config)
        config = follower.current()  # the API's providers over the file's
        registry = ProviderRegistry.from_configs(config.providers, secrets=secrets)
        writer = LedgerWriter(ledger)
        # The same limits store as every batch's router: what either reserves, the other sees at once.
        shared = SharedLimits(LimitStore(ledger.engine, owner=this_owner()))
        router = Router(
            registry,
            config,
            recorder=writer.submit,
            observer=observer,
            shared=shared,
            cache_lookup=ledger_lookup(ledger),
        )
        restore_router_state(router, ledger, api_run_id(), scores=config.strategy == "adaptive")
        return cls(config, ledger, registry, router, writer, observer, follower, shared)

    async def follow(self, *, force: bool = False) -> None:
        """Adopt providers the API changed (here or in another process) since the last look."""
        config = await asyncio.to_thread(self.follower.changed, force=force)
        if config is not None:
            await asyncio.wrap_future(engine_loop().submit(adopt_providers(self.router, config)))
            self.config = config

    async def route(self, task: AITask) -> SingleResult:
        """Register `task` in the day's run, route it on the engine loop, commit its attempts and outcome.

        Call from any event loop; raises TaskIdTaken when the day's run already has the task's id."""
        run_id = api_run_id()
        await self.follow()
        await asyncio.to_thread(self._register, run_id, task)
        future = engine_loop().submit(self._route_on_engine(run_id, task))
        return SingleResult(run_id, task.id, await asyncio.wrap_future(future))

    def _register(self, run_id: str, task: AITask) -> None:
        if run_id not in self._runs:
            self.ledger.open_standing_run(run_id, batch_name=API_BATCH_NAME, strategy=self.config.strategy)
            self._runs.add(run_id)
        row = NewTask(task_id=task.id, task_type=task.type, priority=task.priority.value, team=task.team)
        if not self.ledger.add_task(run_id, row):
            raise TaskIdTaken(f"task id {task.id!r} is already taken in run {run_id}")

    async def _route_on_engine(self, run_id: str, task: AITask) -> RoutedResult:
        run = RunInfo(run_id=run_id, strategy=self.config.strategy, team=task.team)
        routed = await self.router.route(task, run, durable=False)
        outcome = TaskOutcome(
            task_id=task.id,
            status=routed.status,
            provider_id=routed.provider_id,
            output=routed.response.text if routed.response else None,
            error=routed.error,
            decision=routed.decision,
        )
        done = self.writer.submit_outcome(run_id, outcome)
        await routed.committed()
        await asyncio.wrap_future(done) if not isinstance(done, asyncio.Future) else await done
        return routed

    def close(self) -> None:
        engine_loop().run(self.registry.aclose(), cleanup=True)
        self.writer.close()
        if self.shared is not None:
            self.shared.close()  # settles what this process's calls used
        close_observer = getattr(self.observer, "close", None)
        if close_observer is not None:
            close_observer()


__all__ = ["API_BATCH_NAME", "API_RUN_PREFIX", "SingleResult", "TaskEngine", "TaskIdTaken", "api_run_id", "new_task_id"]
