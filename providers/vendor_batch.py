"""Vendor batch APIs (Anthropic Message Batches, OpenAI Batch): work that can wait, at the vendor's batch price.

A provider opts in with `batch:` in its config (`VendorBatchSettings`). Its `VendorBatchClient` submits several
tasks as one vendor batch, reads the batch's state, fetches the per-request results and cancels. Each result maps
to what a live call gives: an answer (`ProviderResponse`, charged at the batch price with the list price kept
beside it), a `ProviderError` of the same classes a live call raises (the vendor's per-request error mapped by the
provider's own status mapping), or `Unanswered` (expired or cancelled: the task goes live instead). Waiting,
gathering and deadlines are the batch core's (batches/deferred.py); this layer only speaks the wire formats.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from providers.errors import MalformedResponse, ProviderError
from providers.models import AITask, ExecutionContext, ProviderResponse

# Both vendors end a batch at most this long after it was created (Anthropic: 24 h; OpenAI: completion_window 24h).
VENDOR_WINDOW_S = 86_400.0


class VendorBatchSettings(BaseModel):
    """`batch:` in an `anthropic` or `openai_compatible` provider's config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    # The batch price is the list price less this fraction (both vendors charge half: 0.5).
    discount: float = Field(default=0.5, ge=0, lt=1)
    # How long ready deferrable tasks are gathered before they go out as one vendor batch.
    gather_s: float = Field(default=5.0, ge=0)
    max_requests: int = Field(default=1000, ge=1, le=50_000)
    # Polling backs off from `poll_initial_s` by `poll_factor` up to `poll_max_s`.
    poll_initial_s: float = Field(default=30.0, gt=0)
    poll_max_s: float = Field(default=600.0, gt=0)
    poll_factor: float = Field(default=2.0, ge=1)
    # A task goes to the vendor batch only with at least this long before its deadline ...
    min_wait_s: float = Field(default=3600.0, ge=0)
    # ... and is taken back (cancelled there, answered live) this long before its deadline.
    live_margin_s: float = Field(default=600.0, ge=0)

    @property
    def longest_wait_s(self) -> float:
        """From a task's handing over to the latest its answer or expiry is seen: gathering, the vendor's window
        and the last poll."""
        return self.gather_s + VENDOR_WINDOW_S + self.poll_max_s

    @model_validator(mode="after")
    def _consistent(self) -> VendorBatchSettings:
        if self.poll_max_s < self.poll_initial_s:
            raise ValueError(f"poll_max_s ({self.poll_max_s:g}) must not be less than poll_initial_s "
                             f"({self.poll_initial_s:g})")  # fmt: skip
        if self.min_wait_s < self.live_margin_s:
            # A task let in with less than the margin left would leave the vendor batch at once.
            raise ValueError(f"min_wait_s ({self.min_wait_s:g}) must be at least live_margin_s "
                             f"({self.live_margin_s:g})")  # fmt: skip
        return self


class VendorBatchStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    ENDED = "ended"  # results can be fetched (some may be errored, expired or cancelled)
    FAILED = "failed"  # the vendor refused the whole batch (OpenAI `failed`): nothing in it was answered


class VendorBatch(BaseModel):
    model_config = ConfigDict(frozen=True)

    batch_id: str
    status: VendorBatchStatus
    # The vendor's own word for it (`in_progress`, `canceling`, `finalizing`, ...), for people.
    vendor_status: str
    expires_at: datetime | None = None
    counts: dict[str, int] = Field(default_factory=dict)


class Unanswered(BaseModel):
    """A request the vendor ended without an answer or an error of its own: `expired` or `canceled`."""

    model_config = ConfigDict(frozen=True)

    reason: str


BatchResult = ProviderResponse | ProviderError | Unanswered


class VendorBatchClient(ABC):
    """Speaks one vendor's batch API on behalf of a configured provider (its URL, key, body format, errors)."""

    vendor: ClassVar[str]

    def __init__(self, settings: VendorBatchSettings) -> None:
        self.settings = settings

    @abstractmethod
    async def submit(self, requests: Sequence[tuple[str, AITask, ExecutionContext]]) -> VendorBatch:
        """Send (custom_id, task, context) requests as one vendor batch."""

    @abstractmethod
    async def retrieve(self, batch_id: str) -> VendorBatch: ...

    @abstractmethod
    async def results(self, batch_id: str, context: ExecutionContext) -> dict[str, BatchResult]:
        """Every request's result by custom_id, once the batch has ended."""

    @abstractmethod
    async def cancel(self, batch_id: str) -> VendorBatch: ...

    def at_batch_price(self, answer: ProviderResponse, batch_id: str) -> ProviderResponse:
        """A live-priced answer as the batch charged it: the discounted cost charged, the list price kept."""
        listed = answer.cost_usd if answer.list_price_usd is None else answer.list_price_usd
        metadata = {**answer.metadata, "vendor_batch_id": batch_id}
        return answer.model_copy(
            update={"cost_usd": listed * (1 - self.settings.discount), "list_price_usd": listed, "metadata": metadata}
        )


def jsonl(response: httpx.Response) -> list[dict[str, object]]:
    """The JSON objects in a JSONL body; a line that is not one is malformed (the vendor broke its format)."""
    lines: list[dict[str, object]] = []
    for number, line in enumerate(response.text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise MalformedResponse(f"results line {number} is not a JSON object", error_type="invalid_jsonl")
        lines.append(value)
    return lines


__all__ = [
    "BatchResult",
    "Unanswered",
    "VendorBatch",
    "VendorBatchClient",
    "VendorBatchSettings",
    "VendorBatchStatus",
    "jsonl",
]
