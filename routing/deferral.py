"""What routing needs from whoever sends deferrable work to vendor batch APIs (the batch core fills it in:
batches/deferred.py), so the routing step stays free of polling, gathering and the ledger rows it keeps."""

from __future__ import annotations

from typing import Protocol

from providers import AIProvider, AITask, ExecutionContext, ProviderError, ProviderResponse


class Deferral(Protocol):
    def takes(self, provider: AIProvider, task: AITask) -> bool:
        """Whether `task` may wait for `provider`'s vendor batch API now (it is deferrable, the provider offers a
        batch API, and its deadline leaves time), or waits in one of its batches already (a resumed run)."""
        ...

    async def call(
        self, provider: AIProvider, task: AITask, context: ExecutionContext
    ) -> tuple[ProviderResponse | ProviderError | None, str | None]:
        """The task's answer through the vendor batch (charged at the batch price), the request's own error (the
        same classes a live call raises), or None: not answered in time (deadline, expiry, cancellation) and
        routing must call live; with the vendor's batch id (None if it never got one)."""
        ...


__all__ = ["Deferral"]
