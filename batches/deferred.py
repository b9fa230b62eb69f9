"""Deferrable tasks through vendor batch APIs: gather, submit, record durably, poll with backoff, fall back live.

A task may wait when its spec gives it a `deadline` or the batch is `deferrable`, and the provider routing chose
for it has `batch:` on (providers.vendor_batch). Ready tasks for one provider are gathered for `gather_s` and go
out as one vendor batch. The vendor's batch id and each task's custom_id are committed to the ledger before
anyone waits (ledger.vendor_batches), so a resumed run polls that batch instead of submitting the task again.

One poller per vendor batch asks for its state with backoff (`poll_initial_s`, times `poll_factor`, at most
`poll_max_s`), never sleeping past the moment a waiting task must leave for a live call: `live_margin_s` before
its deadline. A task whose deadline comes first leaves the batch (when no task is left waiting on it, the vendor
batch is cancelled) and routing calls live; so do requests the vendor expired or cancelled. A request the vendor
answered with an error comes back as the same error class a live call raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from ledger import (
    Ledger,
    VendorState,
    VendorWait,
    record_vendor_submission,
    settle_vendor_request,
    waiting_in_vendor_batches,
)
from providers import (
    AIProvider,
    AITask,
    BatchResult,
    ExecutionContext,
    ProviderError,
    ProviderResponse,
    Unanswered,
    VendorBatchClient,
    VendorBatchStatus,
    utc_now,
    vendor_batch_client,
)
from routing import BatchTerms

log = logging.getLogger(__name__)

# What a waiter is resolved with when its own deadline (less the live margin) comes before the batch ends.
DEADLINE = Unanswered(reason="deadline")
# Errors reading a vendor batch that asking again cannot fix (it is gone, e.g. archived, or the key is refused):
# its tasks go live rather than poll forever.
_UNREADABLE = frozenset({"bad_request", "authentication", "malformed_response"})


@dataclass(eq=False)
class _Waiter:
    task: AITask
    context: ExecutionContext
    # When the task must leave for a live call (its deadline less the live margin); None: the vendor's window.
    leave_at: datetime | None
    future: asyncio.Future[BatchResult] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    custom_id: str = field(default_factory=lambda: "sb-" + uuid.uuid4().hex[:24])
    batch_id: str | None = None  # once submitted


@dataclass(eq=False)
class _Poll:
    client: VendorBatchClient
    waiters: dict[str, _Waiter]  # by custom_id
    job: asyncio.Task[None] | None = None
    # Tasks that left for a live call (deadline), and tasks whose routing was cancelled (the run stopped).
    released: int = 0
    abandoned: int = 0


class DeferredCalls:
    """The run's vendor batch work (routing.Deferral), on the engine loop: no locks."""

    def __init__(
        self,
        ledger: Ledger,
        run_id: str,
        run_started_at: datetime,
        *,
        clients: Callable[[AIProvider], VendorBatchClient | None] = vendor_batch_client,
        wall_clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._ledger, self._run_id, self._started = ledger, run_id, run_started_at
        self._make_client, self._now, self._sleep = clients, wall_clock, sleep
        self._clients: dict[int, VendorBatchClient | None] = {}  # by id() of the provider instance
        self._gathering: dict[str, list[_Waiter]] = {}
        self._gatherers: dict[str, asyncio.Task[None]] = {}
        self._polls: dict[str, _Poll] = {}
        # Tasks this run left waiting in vendor batches before a restart: polled, never submitted again.
        self._resumed: dict[str, VendorWait] = waiting_in_vendor_batches(ledger, run_id)
        self._jobs: set[asyncio.Task[None]] = set()
        # The waiter of each task waiting now (or whose wait was cancelled), by task id.
        self._waiting: dict[str, _Waiter] = {}

    # --- routing.Deferral --------------------------------------------------------------------------------

    def resumes(self, provider: AIProvider, task: AITask) -> bool:
        waiting = self._resumed.get(task.id)
        return waiting is not None and waiting.provider_id == provider.provider_id

    def terms(self, provider: AIProvider) -> BatchTerms:
        client = self._client(provider)
        assert client is not None  # routing asked `takes` first
        return BatchTerms(client.settings.discount, client.settings.longest_wait_s)

    def submitted(self, task: AITask) -> bool:
        waiter = self._waiting.get(task.id)
        return waiter is not None and waiter.batch_id is not None

    def takes(self, provider: AIProvider, task: AITask) -> bool:
        client = self._client(provider)
        if client is None or task.metadata.get("deferrable") != "true":
            return False
        if self.resumes(provider, task):
            return True
        leave_at = self._leave_at(task, client)
        return leave_at is None or (leave_at - self._now()).total_seconds() >= client.settings.min_wait_s

    async def call(
        self, provider: AIProvider, task: AITask, context: ExecutionContext
    ) -> tuple[ProviderResponse | ProviderError | None, str | None]:
        client = self._client(provider)
        assert client is not None  # routing asked `takes` first
        waiter = _Waiter(task, context, self._leave_at(task, client))
        resumed = self._resumed.pop(task.id, None)
        if resumed is not None and resumed.provider_id == provider.provider_id:
            waiter.custom_id, waiter.batch_id = resumed.custom_id, resumed.vendor_batch_id
            self._watch(client, resumed.vendor_batch_id, [waiter])
        else:
            self._gather(provider.provider_id, client, waiter)
        # Kept when the wait is cancelled (the run stopped): routing then asks `submitted`.
        self._waiting[task.id] = waiter
        result = await waiter.future  # cancelled with the run: its row stays `waiting`, for the next start
        del self._waiting[task.id]
        return await self._settle(provider.provider_id, task.id, result), waiter.batch_id

    # --- gathering and submitting -----------------------------------------------------------------------

    def _gather(self, provider_id: str, client: VendorBatchClient, waiter: _Waiter) -> None:
        self._gathering.setdefault(provider_id, []).append(waiter)
        if provider_id not in self._gatherers:
            self._gatherers[provider_id] = self._start(self._submit_after_window(provider_id, client))

    async def _submit_after_window(self, provider_id: str, client: VendorBatchClient) -> None:
        await self._sleep(client.settings.gather_s)
        del self._gatherers[provider_id]
        waiters = [w for w in self._gathering.pop(provider_id, []) if not w.future.done()]
        size = client.settings.max_requests
        try:
            for start in range(0, len(waiters), size):
                await self._submit(provider_id, client, waiters[start : start + size])
        except Exception as exc:  # a bug must not leave tasks waiting forever: they go live
            log.exception("%s: vendor batch submission failed", provider_id)
            for w in waiters:
                if w.batch_id is None:
                    _resolve(w, Unanswered(reason=f"not submitted: {type(exc).__name__}"))

    async def _submit(self, provider_id: str, client: VendorBatchClient, waiters: list[_Waiter]) -> None:
        try:
            batch = await client.submit([(w.custom_id, w.task, w.context) for w in waiters])
        except ProviderError as exc:
            log.warning("%s: vendor batch not submitted (%s); its %d tasks go live", provider_id, exc, len(waiters))
            for w in waiters:
                _resolve(w, Unanswered(reason=f"not submitted: {exc}"))
            return
        for w in waiters:  # the vendor has them: paid for, whoever waits for the answers
            w.batch_id = batch.batch_id
        ids = {w.task.id: w.custom_id for w in waiters}
        # Durable before anyone waits: a restart from here on polls this batch instead of paying for it twice.
        try:
            await asyncio.to_thread(
                record_vendor_submission, self._ledger, self._run_id, provider_id, batch.batch_id, ids
            )
        except SQLAlchemyError:
            # Paid for already: this process still collects the answers; only a restart would not find them.
            log.exception("%s: vendor batch %s not recorded in the ledger", provider_id, batch.batch_id)
        log.info("%s: %d tasks wait in vendor batch %s", provider_id, len(waiters), batch.batch_id)
        self._watch(client, batch.batch_id, waiters)

    # --- polling ------------------------------------------------------------------------------------------

    def _watch(self, client: VendorBatchClient, batch_id: str, waiters: list[_Waiter]) -> None:
        poll = self._polls.get(batch_id)
        if poll is None:
            poll = self._polls[batch_id] = _Poll(client, {})
        poll.waiters.update((w.custom_id, w) for w in waiters)
        if poll.job is None:
            poll.job = self._start(self._poll(batch_id, poll))

    async def _poll(self, batch_id: str, poll: _Poll) -> None:
        settings = poll.client.settings
        delay = settings.poll_initial_s
        try:
            while True:
                self._release_due(poll)
                if not poll.waiters:
                    if poll.released and not poll.abandoned:
                        # Every task left for a live call: the vendor need not finish (nor charge) the rest.
                        with contextlib.suppress(ProviderError):
                            await poll.client.cancel(batch_id)
                    # Else the run stopped: the batch runs on, and the next start polls it (the ledger says where).
                    return
                try:
                    batch = await poll.client.retrieve(batch_id)
                    if batch.status is VendorBatchStatus.ENDED:
                        any_waiter = next(iter(poll.waiters.values()))
                        results = await poll.client.results(batch_id, any_waiter.context)
                        for custom_id, waiter in poll.waiters.items():
                            _resolve(waiter, results.get(custom_id, Unanswered(reason="missing from the results")))
                        return
                    if batch.status is VendorBatchStatus.FAILED:
                        for waiter in poll.waiters.values():
                            _resolve(waiter, Unanswered(reason=f"vendor batch {batch.vendor_status}"))
                        return
                except ProviderError as exc:
                    if exc.outcome in _UNREADABLE:
                        for waiter in poll.waiters.values():
                            _resolve(waiter, Unanswered(reason=f"vendor batch unreadable: {exc.outcome}"))
                        return
                    log.warning("vendor batch %s: %s", batch_id, exc)  # the endpoint's own trouble: ask again later
                await self._sleep(self._next_sleep(poll, delay))
                delay = min(delay * settings.poll_factor, settings.poll_max_s)
        finally:
            self._polls.pop(batch_id, None)
            for waiter in poll.waiters.values():  # cancelled, or a bug: nobody waits forever
                if not waiter.future.done():
                    waiter.future.cancel()

    def _release_due(self, poll: _Poll) -> None:
        """Send every waiter whose deadline is near to a live call; forget those whose task was cancelled."""
        now = self._now()
        for custom_id, waiter in list(poll.waiters.items()):
            if waiter.future.done():
                del poll.waiters[custom_id]
                poll.abandoned += 1
            elif waiter.leave_at is not None and now >= waiter.leave_at:
                _resolve(waiter, DEADLINE)
                del poll.waiters[custom_id]
                poll.released += 1

    def _next_sleep(self, poll: _Poll, delay: float) -> float:
        """The backoff delay, cut short so a waiter leaves for a live call at its moment, not a poll later."""
        leaving = [w.leave_at for w in poll.waiters.values() if w.leave_at is not None]
        if not leaving:
            return delay
        return max(0.0, min(delay, (min(leaving) - self._now()).total_seconds()))

    # --- results ------------------------------------------------------------------------------------------

    async def _settle(
        self, provider_id: str, task_id: str, result: BatchResult
    ) -> ProviderResponse | ProviderError | None:
        if isinstance(result, ProviderResponse):
            state, detail, answer = VendorState.DONE, None, result
        elif isinstance(result, ProviderError):
            state, detail, answer = VendorState.FAILED, f"{result.outcome}: {result}", result
        else:
            state, detail, answer = VendorState.FELL_BACK, result.reason, None
        try:
            await asyncio.to_thread(
                settle_vendor_request, self._ledger, self._run_id, task_id, provider_id, state, detail
            )
        except SQLAlchemyError:  # the answer stands (its attempt goes through the writer, which spools)
            log.exception("vendor batch request of task %s not settled in the ledger", task_id)
        return answer

    # --- helpers ------------------------------------------------------------------------------------------

    def _client(self, provider: AIProvider) -> VendorBatchClient | None:
        key = id(provider)
        if key not in self._clients:
            self._clients[key] = self._make_client(provider)
        return self._clients[key]

    def _leave_at(self, task: AITask, client: VendorBatchClient) -> datetime | None:
        deadline_s = task.metadata.get("deadline_s")
        if deadline_s is None:
            return None
        deadline = self._started + timedelta(seconds=float(deadline_s))
        return deadline - timedelta(seconds=client.settings.live_margin_s)

    def _start(self, work: Awaitable[None]) -> asyncio.Task[None]:
        job: asyncio.Task[None] = asyncio.ensure_future(work)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return job

    async def aclose(self) -> None:
        """Stop polling (a closing run): the tasks still waiting stay `waiting` in the ledger for the next start."""
        for job in list(self._jobs):
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)


def _resolve(waiter: _Waiter, result: BatchResult) -> None:
    if not waiter.future.done():
        waiter.future.set_result(result)


__all__ = ["DEADLINE", "DeferredCalls"]
