"""Vendor batch work for tasks routed one at a time (the HTTP API's `POST /tasks` with a `deadline`).

One router serves every API run (one per UTC day), but a `DeferredCalls` keeps the ledger rows and deadlines of
one run. `RunDeferrals` is the router's `routing.Deferral`: it hands each task to its run's `DeferredCalls`,
made on the first deferred task of that run and kept while the process lives (pollers and vendor cancels may
outlast the task that started them).
"""

from __future__ import annotations

from datetime import datetime

from batches.deferred import DeferredCalls
from ledger import Ledger
from providers import AIProvider, AITask, ExecutionContext, ProviderError, ProviderResponse
from routing import BatchTerms


class RunDeferrals:
    """routing.Deferral over several runs; on the engine loop (no locks)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._runs: dict[str, DeferredCalls] = {}
        # The run of each task being routed, by the task object: `takes` is not told the run, and the same task
        # id may be in flight in two days' runs. The router hands the deferral the very object it was given.
        self._routing: dict[int, str] = {}

    def enter(self, run_id: str, run_started_at: datetime, task: AITask) -> None:
        """`task` (of `run_id`) is about to be routed and may wait in a vendor batch."""
        if run_id not in self._runs:
            self._runs[run_id] = DeferredCalls(self._ledger, run_id, run_started_at)
        self._routing[id(task)] = run_id

    def leave(self, task: AITask) -> None:
        self._routing.pop(id(task), None)

    # --- routing.Deferral --------------------------------------------------------------------------------

    def takes(self, provider: AIProvider, task: AITask) -> bool:
        calls = self._of(task)
        return calls is not None and calls.takes(provider, task)

    def resumes(self, provider: AIProvider, task: AITask) -> bool:
        calls = self._of(task)
        return calls is not None and calls.resumes(provider, task)

    def terms(self, provider: AIProvider) -> BatchTerms:
        # The provider's `batch:` settings alone: every run's DeferredCalls answers the same (one took a task).
        return next(iter(self._runs.values())).terms(provider)

    def submitted(self, task: AITask) -> bool:
        calls = self._of(task)
        return calls is not None and calls.submitted(task)

    async def call(
        self, provider: AIProvider, task: AITask, context: ExecutionContext
    ) -> tuple[ProviderResponse | ProviderError | None, str | None]:
        return await self._runs[context.run_id].call(provider, task, context)

    def _of(self, task: AITask) -> DeferredCalls | None:
        run_id = self._routing.get(id(task))
        return None if run_id is None else self._runs[run_id]

    async def aclose(self) -> None:
        """Stop polling: tasks still waiting stay `waiting` in the ledger (see TaskEngine.close)."""
        for calls in self._runs.values():
            await calls.aclose()


__all__ = ["RunDeferrals"]
