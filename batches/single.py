"""Tasks routed one at a time (the HTTP API's `POST /tasks`), through the same router, limits and ledger as
batches: one long-lived registry, router and ledger writer per process, every task recorded in the run of its
UTC day (`api-20261206`), its attempts committed before its answer is returned.

A task with a deadline (`start`) is registered at once and routed in the background: it may wait in a vendor
batch API (batches.single_deferral) for hours, and is read back from the ledger meanwhile. The ledger keeps the
task itself until its outcome is recorded (ledger.api_tasks). Closing the engine cancels that work: a task that
waits in a vendor batch stays `pending` (its vendor batch row `waiting`) and is released, and the next engine to
open (this API restarted, or another) routes it again, polling that vendor batch, never submitting it twice; a
task not submitted to a vendor yet is recorded `cancelled`. A process that died (`kill -9`) leaves its tasks to
the next start on the same machine; one on another machine cannot be told gone, so its tasks stay `pending`.

The router starts from what the ledger remembers (quota windows, circuits, blocks, today's spend) and reserves
against the same shared limits store as every batch's router (routing.shared), so what batches use counts
against these tasks and what these tasks use counts against batches, also while both run.
"""

from __future__ import annotations

import asyncio
import logging
import secrets as random_ids
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from batches.overlay import OverlayFollower
from batches.ownership import process_gone, this_owner
from batches.single_deferral import RunDeferrals
from batches.spec import deferral_metadata
from ledger import (
    Ledger,
    LedgerWriter,
    LimitStore,
    NewTask,
    TaskOutcome,
    TaskStatus,
    claim_api_tasks,
    forget_api_task,
    keep_api_task,
    release_api_task,
)
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

log = logging.getLogger(__name__)

API_RUN_PREFIX = "api-"
API_BATCH_NAME = "api"
# The error a background task gets when the engine closes before it reached a vendor batch or was answered.
STOPPED = "the API stopped before the task was answered; it is not routed again (post it again)"


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
    deferrals: RunDeferrals | None = None
    _runs: set[str] = field(default_factory=set)
    # Tasks routing in the background (`start`), on the engine loop.
    _background: set[asyncio.Task[None]] = field(default_factory=set)

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
        # Always there: providers may get `batch:` through the API later; tasks without a deadline never ask it.
        deferrals = RunDeferrals(ledger)
        router = Router(
            registry,
            config,
            recorder=writer.submit,
            observer=observer,
            shared=shared,
            cache_lookup=ledger_lookup(ledger),
            deferral=deferrals,
        )
        restore_router_state(router, ledger, api_run_id(), scores=config.strategy == "adaptive")
        engine = cls(config, ledger, registry, router, writer, observer, follower, shared, deferrals)
        engine.resume()
        return engine

    def resume(self) -> int:
        """Route again, in the background, the deadline tasks a stopped API left (released, or of a process on this
        machine that exited): one waiting in a vendor batch is polled there. Returns how many."""
        kept = claim_api_tasks(self.ledger, this_owner(), process_gone)
        for k in kept:
            state, run = self.ledger.task_state(k.run_id, k.task_id), self.ledger.get_run(k.run_id)
            if state is None or run is None or state.status != TaskStatus.PENDING:
                forget_api_task(self.ledger, k.run_id, k.task_id)  # recorded already; only its row was left
                continue
            task = AITask.model_validate(k.task)
            engine_loop().run(self._background_route(k.run_id, run.started_at, task))
            log.info("task %s of run %s: routed again after a restart", k.task_id, k.run_id)
        return len(kept)

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

    async def start(self, task: AITask, deadline_s: float) -> tuple[str, str]:
        """Register `task` in the day's run and route it in the background: it may wait in a vendor batch until
        shortly before `deadline_s` from now, then goes live. Returns (run id, task id) once registered.

        Call from any event loop; raises TaskIdTaken when the day's run already has the task's id."""
        run_id = api_run_id()
        await self.follow()
        started_at = await asyncio.to_thread(self._register, run_id, task)
        # DeferredCalls counts deadlines from the run's start (a batch's tasks share one); this task's from now.
        due_s = (utc_now() - started_at).total_seconds() + deadline_s
        task = task.model_copy(update={"metadata": {**task.metadata, **deferral_metadata(due_s)}})
        # Durable before the 202: a restart routes it again from here (its prompt is nowhere else).
        await asyncio.to_thread(keep_api_task, self.ledger, run_id, task.id, task.model_dump(mode="json"), this_owner())
        await asyncio.wrap_future(engine_loop().submit(self._background_route(run_id, started_at, task)))
        return run_id, task.id

    async def _background_route(self, run_id: str, started_at: datetime, task: AITask) -> None:
        """On the engine loop: start routing `task` as a job of its own, kept until it ends."""
        deferrals = self.deferrals
        assert deferrals is not None
        deferrals.enter(run_id, started_at, task)  # a run's first deferred task reads its waiting rows once
        job = asyncio.ensure_future(self._route_in_background(run_id, task))
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def _route_in_background(self, run_id: str, task: AITask) -> None:
        assert self.deferrals is not None
        try:
            routed = await self.router.route(task, self._run_info(run_id, task), durable=False)
        except asyncio.CancelledError:
            self._stopped(run_id, task, submitted=self.deferrals.submitted(task))
            raise
        except Exception:  # nobody awaits this job: a bug must show in the log, and the task not stay pending
            log.exception("task %s of run %s: background routing failed", task.id, run_id)
            outcome = TaskOutcome(task_id=task.id, status=TaskStatus.FAILED, error="internal error while routing")
            self.writer.submit_outcome(run_id, outcome)
            await asyncio.to_thread(forget_api_task, self.ledger, run_id, task.id)
            return
        finally:
            self.deferrals.leave(task)
        try:
            await self._commit(run_id, task, routed)
            await asyncio.to_thread(forget_api_task, self.ledger, run_id, task.id)
        except Exception:  # e.g. the ledger went away (the writer spools what it can): nobody else would say so
            log.exception("task %s of run %s: outcome not committed", task.id, run_id)

    def _stopped(self, run_id: str, task: AITask, *, submitted: bool) -> None:
        """The engine closes while the task routes (on the loop, at shutdown: blocking briefly is fine)."""
        try:
            if submitted:
                # Paid for at the vendor: it stays `pending`, its vendor batch row `waiting`, for the next start.
                release_api_task(self.ledger, run_id, task.id)
                return
            self.writer.submit_outcome(run_id, TaskOutcome(task_id=task.id, status=TaskStatus.CANCELLED, error=STOPPED))
            forget_api_task(self.ledger, run_id, task.id)
        except SQLAlchemyError:  # the next start finds the row still ours and this process gone: it routes it again
            log.exception("task %s of run %s: not released in the ledger", task.id, run_id)

    async def _stop_background(self) -> None:
        for job in list(self._background):
            job.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.deferrals is not None:
            await self.deferrals.aclose()

    def _register(self, run_id: str, task: AITask) -> datetime:
        if run_id not in self._runs:
            self.ledger.open_standing_run(run_id, batch_name=API_BATCH_NAME, strategy=self.config.strategy)
            self._runs.add(run_id)
        row = NewTask(task_id=task.id, task_type=task.type, priority=task.priority.value, team=task.team)
        if not self.ledger.add_task(run_id, row):
            raise TaskIdTaken(f"task id {task.id!r} is already taken in run {run_id}")
        record = self.ledger.get_run(run_id)
        return record.started_at if record is not None else utc_now()

    def _run_info(self, run_id: str, task: AITask) -> RunInfo:
        return RunInfo(run_id=run_id, strategy=self.config.strategy, team=task.team)

    async def _route_on_engine(self, run_id: str, task: AITask) -> RoutedResult:
        routed = await self.router.route(task, self._run_info(run_id, task), durable=False)
        await self._commit(run_id, task, routed)
        return routed

    async def _commit(self, run_id: str, task: AITask, routed: RoutedResult) -> None:
        """Record the task's outcome, and return once it and its attempts are committed."""
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

    def close(self) -> None:
        engine_loop().run(self._stop_background(), cleanup=True)  # before the writer closes: their outcomes
        engine_loop().run(self.registry.aclose(), cleanup=True)
        self.writer.close()
        if self.shared is not None:
            self.shared.close()  # settles what this process's calls used
        close_observer = getattr(self.observer, "close", None)
        if close_observer is not None:
            close_observer()


__all__ = [
    "API_BATCH_NAME",
    "API_RUN_PREFIX",
    "STOPPED",
    "SingleResult",
    "TaskEngine",
    "TaskIdTaken",
    "api_run_id",
    "new_task_id",
]
