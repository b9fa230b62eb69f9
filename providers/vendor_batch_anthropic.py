"""The Anthropic Message Batches API for an `anthropic` provider.

POST /v1/messages/batches           {"requests": [{"custom_id", "params": <a Messages API request>}]}
GET  /v1/messages/batches/{id}      processing_status in_progress | canceling | ended, request_counts,
                                    results_url (once ended), expires_at (24 h after creation)
GET  <results_url>                  JSONL: {"custom_id", "result": {"type": "succeeded", "message"} |
                                    {"type": "errored", "error": {"type": "error", "error": {type, message}}} |
                                    {"type": "canceled"} | {"type": "expired"}}
POST /v1/messages/batches/{id}/cancel
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import httpx

from providers.anthropic import AnthropicProvider, parse_rfc3339
from providers.errors import MalformedResponse
from providers.models import AITask, ExecutionContext
from providers.vendor_batch import (
    BatchResult,
    Unanswered,
    VendorBatch,
    VendorBatchClient,
    VendorBatchSettings,
    VendorBatchStatus,
    jsonl,
)

# The HTTP status each Anthropic error type comes with on a live call: a batch result's error carries only the
# type, and the provider's own status mapping then gives the same error class a live call would have raised.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicBatchClient(VendorBatchClient):
    vendor: ClassVar[str] = "anthropic"

    def __init__(self, provider: AnthropicProvider, settings: VendorBatchSettings) -> None:
        super().__init__(settings)
        self.provider = provider

    async def submit(self, requests: Sequence[tuple[str, AITask, ExecutionContext]]) -> VendorBatch:
        body = {
            "requests": [
                {"custom_id": custom_id, "params": self.provider.request_body(task, context)}
                for custom_id, task, context in requests
            ]
        }
        return await self._batch("POST", "/v1/messages/batches", requests[0][2], json=body)

    async def retrieve(self, batch_id: str) -> VendorBatch:
        return await self._batch("GET", f"/v1/messages/batches/{batch_id}", None)

    async def cancel(self, batch_id: str) -> VendorBatch:
        return await self._batch("POST", f"/v1/messages/batches/{batch_id}/cancel", None)

    async def results(self, batch_id: str, context: ExecutionContext) -> dict[str, BatchResult]:
        p = self.provider
        _, data = await self._batch_data("GET", f"/v1/messages/batches/{batch_id}", context)
        url = data.get("results_url")
        if not isinstance(url, str) or not url:
            raise p._error(MalformedResponse, f"batch {batch_id} has no results_url", context, error_type="no_results")
        response, latency_ms = await p._send("GET", url, context)
        if not response.is_success:
            raise p.status_error(response, context)
        results: dict[str, BatchResult] = {}
        for line in jsonl(response):
            custom_id, result = line.get("custom_id"), line.get("result")
            if isinstance(custom_id, str) and isinstance(result, dict):
                results[custom_id] = self._result(result, batch_id, context, latency_ms)
        return results

    def _result(
        self, result: dict[str, Any], batch_id: str, context: ExecutionContext, latency_ms: float
    ) -> BatchResult:
        kind = result.get("type")
        if kind == "succeeded" and isinstance(result.get("message"), dict):
            answer = self.provider.parse_message(result["message"], context, latency_ms)
            return self.at_batch_price(answer, batch_id)
        if kind == "errored":
            envelope = result.get("error")
            error = envelope.get("error") if isinstance(envelope, dict) else None
            error = error if isinstance(error, dict) else {}
            status = _STATUS_OF_TYPE.get(str(error.get("type")), 500)
            return self.provider.status_error(httpx.Response(status, json={"type": "error", "error": error}), context)
        if kind in ("canceled", "expired"):
            return Unanswered(reason=str(kind))
        return self.provider._error(
            MalformedResponse, f"batch result of unknown type {kind!r}", context, error_type="unknown_result"
        )

    async def _batch(self, method: str, path: str, context: ExecutionContext | None, **kwargs: Any) -> VendorBatch:
        return (await self._batch_data(method, path, context, **kwargs))[0]

    async def _batch_data(
        self, method: str, path: str, context: ExecutionContext | None, **kwargs: Any
    ) -> tuple[VendorBatch, dict[str, Any]]:
        p = self.provider
        context = context or ExecutionContext()
        response, _ = await p._send(method, p._url(path), context, **kwargs)
        data = p._checked_json(response, context)
        batch_id, vendor_status = data.get("id"), data.get("processing_status")
        if not isinstance(batch_id, str) or not isinstance(vendor_status, str):
            raise p._error(MalformedResponse, "not a message batch object", context, error_type="no_batch")
        counts = data.get("request_counts")
        batch = VendorBatch(
            batch_id=batch_id,
            status=VendorBatchStatus.ENDED if vendor_status == "ended" else VendorBatchStatus.IN_PROGRESS,
            vendor_status=vendor_status,
            expires_at=parse_rfc3339(data.get("expires_at")),
            counts={k: v for k, v in counts.items() if isinstance(v, int)} if isinstance(counts, dict) else {},
        )
        return batch, data


__all__ = ["AnthropicBatchClient"]
