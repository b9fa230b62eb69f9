"""The OpenAI Batch API for an `openai_compatible` provider (OpenAI itself, or a server that offers the same).

POST /v1/files                      multipart: purpose=batch, file=<JSONL of {custom_id, method: POST,
                                    url: /v1/chat/completions, body: <a chat completions request>}>
POST /v1/batches                    {input_file_id, endpoint: /v1/chat/completions, completion_window: 24h}
GET  /v1/batches/{id}               status validating | in_progress | finalizing | completed | failed |
                                    expired | cancelling | cancelled; output_file_id, error_file_id,
                                    request_counts {total, completed, failed}, expires_at (unix seconds)
GET  /v1/files/{id}/content         JSONL: {id, custom_id, response: {status_code, request_id, body} | null,
                                    error: {code, message} | null}; the error file holds the failed requests
                                    (a non-200 response) and those never run (`batch_expired`,
                                    `batch_cancelled`)
POST /v1/batches/{id}/cancel
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from providers.errors import MalformedResponse
from providers.models import AITask, ExecutionContext
from providers.openai_compatible import OpenAICompatibleProvider
from providers.vendor_batch import (
    BatchResult,
    Unanswered,
    VendorBatch,
    VendorBatchClient,
    VendorBatchSettings,
    VendorBatchStatus,
    jsonl,
)

ENDPOINT = "/v1/chat/completions"
# Ended: results (or none) can be fetched. `failed` refused the whole input (validation): nothing ran.
_ENDED = {"completed", "expired", "cancelled"}
_UNANSWERED = {"batch_expired": "expired", "batch_cancelled": "canceled"}


class OpenAIBatchClient(VendorBatchClient):
    vendor: ClassVar[str] = "openai"

    def __init__(self, provider: OpenAICompatibleProvider, settings: VendorBatchSettings) -> None:
        super().__init__(settings)
        self.provider = provider

    async def submit(self, requests: Sequence[tuple[str, AITask, ExecutionContext]]) -> VendorBatch:
        p, context = self.provider, requests[0][2]
        lines = [
            json.dumps({"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": p.request_body(task, ctx)})
            for cid, task, ctx in requests
        ]
        upload = ("switchboard-batch.jsonl", ("\n".join(lines) + "\n").encode(), "application/jsonl")
        response, _ = await p._send(
            "POST", p._url("/files"), context, files={"file": upload}, data={"purpose": "batch"}
        )
        file_id = p._checked_json(response, context).get("id")
        if not isinstance(file_id, str):
            raise p._error(MalformedResponse, "uploaded file has no id", context, error_type="no_file_id")
        body = {"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h"}
        return (await self._batch("POST", "/batches", context, json=body))[0]

    async def retrieve(self, batch_id: str) -> VendorBatch:
        return (await self._batch("GET", f"/batches/{batch_id}", ExecutionContext()))[0]

    async def cancel(self, batch_id: str) -> VendorBatch:
        return (await self._batch("POST", f"/batches/{batch_id}/cancel", ExecutionContext()))[0]

    async def results(self, batch_id: str, context: ExecutionContext) -> dict[str, BatchResult]:
        _, data = await self._batch("GET", f"/batches/{batch_id}", context)
        results: dict[str, BatchResult] = {}
        for key in ("output_file_id", "error_file_id"):
            file_id = data.get(key)
            if not isinstance(file_id, str) or not file_id:
                continue
            response, latency_ms = await self.provider._send(
                "GET", self.provider._url(f"/files/{file_id}/content"), context
            )
            if not response.is_success:
                raise self.provider.status_error(response, context)
            for line in jsonl(response):
                custom_id = line.get("custom_id")
                if isinstance(custom_id, str):
                    results[custom_id] = self._result(line, batch_id, context, latency_ms)
        return results

    def _result(self, line: dict[str, Any], batch_id: str, context: ExecutionContext, latency_ms: float) -> BatchResult:
        p = self.provider
        response, error = line.get("response"), line.get("error")
        if isinstance(response, dict) and isinstance(response.get("status_code"), int):
            status, body = response["status_code"], response.get("body")
            if 200 <= status < 300 and isinstance(body, dict):
                answer = p.parse_completion(body, context, latency_ms, request_id=_text(response.get("request_id")))
                return self.at_batch_price(answer, batch_id)
            return p.status_error(httpx.Response(status, json=body if body is not None else {}), context)
        if isinstance(error, dict):
            code = _text(error.get("code")) or ""
            if code in _UNANSWERED:
                return Unanswered(reason=_UNANSWERED[code])
            # Any other request-level error (e.g. a line the vendor could not read) is the request's own fault.
            return p.status_error(httpx.Response(400, json={"error": error}), context)
        return p._error(
            MalformedResponse, "batch output line has no response or error", context, error_type="no_result"
        )

    async def _batch(
        self, method: str, path: str, context: ExecutionContext, **kwargs: Any
    ) -> tuple[VendorBatch, dict[str, Any]]:
        p = self.provider
        response, _ = await p._send(method, p._url(path), context, **kwargs)
        data = p._checked_json(response, context)
        batch_id, vendor_status = data.get("id"), data.get("status")
        if not isinstance(batch_id, str) or not isinstance(vendor_status, str):
            raise p._error(MalformedResponse, "not a batch object", context, error_type="no_batch")
        if vendor_status in _ENDED:
            status = VendorBatchStatus.ENDED
        elif vendor_status == "failed":
            status = VendorBatchStatus.FAILED
        else:
            status = VendorBatchStatus.IN_PROGRESS
        expires = data.get("expires_at")
        counts = data.get("request_counts")
        batch = VendorBatch(
            batch_id=batch_id,
            status=status,
            vendor_status=vendor_status,
            expires_at=datetime.fromtimestamp(expires, UTC) if isinstance(expires, int | float) else None,
            counts={k: v for k, v in counts.items() if isinstance(v, int)} if isinstance(counts, dict) else {},
        )
        return batch, data


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


__all__ = ["OpenAIBatchClient"]
