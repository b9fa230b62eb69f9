"""What routing needs from whoever sends deferrable work to vendor batch APIs (the batch core fills it in:
batches/deferred.py), so the routing step stays free of polling, gathering and the ledger rows it keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from providers import AIProvider, AITask, ExecutionContext, ProviderError, ProviderResponse


@dataclass(frozen=True, slots=True)
class BatchTerms:
    """What a provider's vendor batch charges and how long a request may wait in it, which the budgets hold."""

    # The batch price is the list price less this fraction.
    discount: float
    # From the moment the task is handed over to the latest its answer (or expiry) can come: gathering, the
    # vendor's window and the last poll.
    longest_wait_s: float


class Deferral(Protocol):
    def takes(self, provider: AIProvider, task: AITask) -> bool:
        """Whether `task` may wait for `provider`'s vendor batch API now (it is deferrable, the provider offers a
        batch API, and its deadline leaves time), or waits in one of its batches already (a resumed run)."""
        ...

    def resumes(self, provider: AIProvider, task: AITask) -> bool:
        """Whether `task` waits in one of `provider`'s vendor batches already: submitted (and its budget held) by
        an earlier start of the run."""
        ...

    def terms(self, provider: AIProvider) -> BatchTerms:
        """The price and longest wait of `provider`'s vendor batch (one `takes` accepted)."""
        ...

    def submitted(self, task: AITask) -> bool:
        """Whether `task`'s request reached a vendor batch (it is paid for even if nobody waits for it now)."""
        ...

    async def call(
        self, provider: AIProvider, task: AITask, context: ExecutionContext
    ) -> tuple[ProviderResponse | ProviderError | None, str | None]:
        """The task's answer through the vendor batch (charged at the batch price), the request's own error (the
        same classes a live call raises), or None: not answered in time (deadline, expiry, cancellation) and
        routing must call live; with the vendor's batch id (None if it never got one)."""
        ...


__all__ = ["BatchTerms", "Deferral"]
