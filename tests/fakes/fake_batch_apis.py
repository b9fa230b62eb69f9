"""Stand-ins for the vendors' batch APIs on 127.0.0.1, in their real wire formats (see the provider modules
providers/vendor_batch_anthropic.py and providers/vendor_batch_openai.py for the formats).

`FakeAnthropicBatches`: POST /v1/messages/batches, GET /v1/messages/batches/{id}, GET .../{id}/results (JSONL),
POST .../{id}/cancel, and the live POST /v1/messages (what a task that falls back calls).
`FakeOpenAIBatches`: POST /v1/files (multipart, purpose=batch, the request JSONL), POST /v1/batches, GET
/v1/batches/{id}, POST .../{id}/cancel, GET /v1/files/{id}/content (output and error files), and the live
POST /v1/chat/completions.

How a request ends is chosen by a marker in its prompt: `[errored:<anthropic error type>]` or
`[errored:<http status>]` (OpenAI) fails it as the vendor would, `[expired]` expires it, anything else succeeds.
A batch stays `in_progress` for `polls_to_end` retrieves (None: until `end()`), then ends; `expire()` ends it with
every unanswered request expired; a cancel ends it with every unanswered request cancelled. `retrieve_errors`
answers that many retrieves with the vendor's 500 first; OpenAI's `fail_batches` makes new batches `failed` (the
vendor refused the input as a whole).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.fake_llm_servers import FakeServer, Received, Scripted

ANSWER = "Batch answer"
LIVE_ANSWER = "Live answer"
USAGE_IN, USAGE_OUT = 1000, 500
_ERRORED = re.compile(r"\[errored:([a-z_0-9]+)\]")


@dataclass
class FakeBatch:
    batch_id: str
    # custom_id -> the request's prompt text
    prompts: dict[str, str]
    models: dict[str, str]
    created_at: float
    polls: int = 0
    ended: bool = False
    # custom_id -> "succeeded" | "errored:<x>" | "expired" | "canceled", fixed when the batch ends
    results: dict[str, str] = field(default_factory=dict)
    cancel_requested: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _planned(prompt: str) -> str:
    errored = _ERRORED.search(prompt)
    if errored:
        return f"errored:{errored[1]}"
    return "expired" if "[expired]" in prompt else "succeeded"


class _BatchFake(FakeServer):
    def __init__(self, polls_to_end: int | None = 1) -> None:
        super().__init__()
        self.polls_to_end = polls_to_end
        self.batches: dict[str, FakeBatch] = {}
        self.created = 0
        self.cancelled: list[str] = []
        self.live_calls = 0
        self.retrieve_errors = 0
        self.batch_lock = threading.Lock()

    def _retrieve_error(self) -> bool:
        if self.retrieve_errors > 0:
            self.retrieve_errors -= 1
            return True
        return False

    def end(self, batch_id: str | None = None) -> None:
        """End a batch (the only one if not named): its requests get their planned results."""
        with self.batch_lock:
            for batch in self._named(batch_id):
                self._end(batch)

    def expire(self, batch_id: str | None = None) -> None:
        """The vendor's 24 h window passed: every request not answered yet expires."""
        with self.batch_lock:
            for batch in self._named(batch_id):
                batch.results = {cid: "expired" for cid in batch.prompts}
                batch.ended = True

    def _named(self, batch_id: str | None) -> list[FakeBatch]:
        return [self.batches[batch_id]] if batch_id else list(self.batches.values())

    @staticmethod
    def _end(batch: FakeBatch) -> None:
        if batch.ended:
            return
        batch.ended = True
        for cid, prompt in batch.prompts.items():
            batch.results[cid] = "canceled" if batch.cancel_requested else _planned(prompt)

    def _poll(self, batch: FakeBatch) -> None:
        batch.polls += 1
        if batch.cancel_requested or (self.polls_to_end is not None and batch.polls > self.polls_to_end):
            self._end(batch)


class FakeAnthropicBatches(_BatchFake):
    main_path = "/v1/messages/batches"

    def default(self, request: Received) -> Scripted:
        path = request.path
        with self.batch_lock:
            if request.method == "POST" and path == "/v1/messages":
                self.live_calls += 1
                return Scripted(200, self._message(request.body, LIVE_ANSWER))
            if request.method == "POST" and path == "/v1/messages/batches":
                return self._create(request.body)
            parts = path.removeprefix("/v1/messages/batches/").split("/")
            batch = self.batches.get(parts[0])
            if batch is None:
                return Scripted(404, {"type": "error", "error": {"type": "not_found_error", "message": "no batch"}})
            if request.method == "GET" and len(parts) == 1:
                if self._retrieve_error():
                    return Scripted(500, {"type": "error", "error": {"type": "api_error", "message": "Internal"}})
                self._poll(batch)
                return Scripted(200, self._object(batch))
            if request.method == "GET" and parts[1:] == ["results"]:
                if not batch.ended:
                    return Scripted(
                        400, {"type": "error", "error": {"type": "invalid_request_error", "message": "not ended"}}
                    )
                lines = [json.dumps({"custom_id": cid, "result": self._result(batch, cid)}) for cid in batch.prompts]
                return Scripted(200, "\n".join(lines) + "\n", {"content-type": "application/binary"})
            if request.method == "POST" and parts[1:] == ["cancel"]:
                batch.cancel_requested = True
                self.cancelled.append(batch.batch_id)
                return Scripted(200, self._object(batch, canceling=True))
        return Scripted(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})

    def _create(self, body: Any) -> Scripted:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return Scripted(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "requests"}})
        prompts, models = {}, {}
        for r in requests:
            params = r.get("params") or {}
            if not isinstance(r.get("custom_id"), str) or not params.get("messages") or not params.get("max_tokens"):
                return Scripted(
                    400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad request"}}
                )
            prompts[r["custom_id"]] = json.dumps(params["messages"])
            models[r["custom_id"]] = params.get("model", "")
        batch = FakeBatch(f"msgbatch_{uuid.uuid4().hex[:20]}", prompts, models, time.time())
        self.batches[batch.batch_id] = batch
        self.created += 1
        return Scripted(200, self._object(batch))

    def _object(self, batch: FakeBatch, canceling: bool = False) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for cid in batch.prompts:
            kind = batch.results.get(cid, "processing").split(":")[0]
            counts[kind] += 1
        created = datetime.fromtimestamp(batch.created_at, UTC)
        status = "ended" if batch.ended else "canceling" if canceling or batch.cancel_requested else "in_progress"
        return {
            "id": batch.batch_id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "expires_at": (created + timedelta(hours=24)).isoformat().replace("+00:00", "Z"),
            "ended_at": datetime.now(UTC).isoformat().replace("+00:00", "Z") if batch.ended else None,
            "cancel_initiated_at": None,
            "archived_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch.batch_id}/results" if batch.ended else None,
        }

    def _result(self, batch: FakeBatch, cid: str) -> dict[str, Any]:
        kind = batch.results[cid]
        if kind == "succeeded":
            body = {"model": batch.models[cid], "messages": json.loads(batch.prompts[cid])}
            return {"type": "succeeded", "message": self._message(body, ANSWER)}
        if kind.startswith("errored:"):
            error = {"type": kind.split(":", 1)[1], "message": "the request failed in the batch"}
            return {"type": "errored", "error": {"type": "error", "error": error}}
        return {"type": kind}

    @staticmethod
    def _message(body: Any, text: str) -> dict[str, Any]:
        return {
            "id": f"msg_{uuid.uuid4().hex[:16]}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-sonnet-4-5") if isinstance(body, dict) else "claude-sonnet-4-5",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT},
        }


class FakeOpenAIBatches(_BatchFake):
    main_path = "/v1/batches"

    def __init__(self, polls_to_end: int | None = 1) -> None:
        super().__init__(polls_to_end)
        self.files: dict[str, bytes] = {}
        self.uploads: list[dict[str, str]] = []
        self.fail_batches = False

    def default(self, request: Received) -> Scripted:
        path, method = request.path, request.method
        with self.batch_lock:
            if method == "POST" and path == "/v1/chat/completions":
                self.live_calls += 1
                return Scripted(200, self._completion(request.body, LIVE_ANSWER))
            if method == "POST" and path == "/v1/files":
                return self._upload(request)
            if method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
                content = self.files.get(path.split("/")[3])
                if content is None:
                    return Scripted(404, {"error": {"message": "no file", "type": "invalid_request_error"}})
                return Scripted(200, content, {"content-type": "application/octet-stream"})
            if method == "POST" and path == "/v1/batches":
                return self._create(request.body)
            parts = path.removeprefix("/v1/batches/").split("/")
            batch = self.batches.get(parts[0])
            if batch is None:
                return Scripted(404, {"error": {"message": "no batch", "type": "invalid_request_error"}})
            if method == "GET" and len(parts) == 1:
                if self._retrieve_error():
                    return Scripted(500, {"error": {"message": "internal error", "type": "server_error"}})
                self._poll(batch)
                return Scripted(200, self._object(batch))
            if method == "POST" and parts[1:] == ["cancel"]:
                batch.cancel_requested = True
                self.cancelled.append(batch.batch_id)
                return Scripted(200, self._object(batch))
        return Scripted(404, {"error": {"message": path, "type": "invalid_request_error"}})

    def _upload(self, request: Received) -> Scripted:
        raw = request.body if isinstance(request.body, bytes) else b""
        boundary = request.headers.get("content-type", "").partition("boundary=")[2].encode()
        fields: dict[str, bytes] = {}
        for part in raw.split(b"--" + boundary) if boundary else []:
            head, _, content = part.partition(b"\r\n\r\n")
            name = re.search(rb'name="([^"]+)"', head)
            if name:
                fields[name[1].decode()] = content.removesuffix(b"\r\n")
        if fields.get("purpose") != b"batch" or "file" not in fields:
            return Scripted(400, {"error": {"message": "purpose must be batch", "type": "invalid_request_error"}})
        for line in fields["file"].decode().splitlines():
            item = json.loads(line)
            if item.get("method") != "POST" or item.get("url") != "/v1/chat/completions" or "custom_id" not in item:
                return Scripted(400, {"error": {"message": "bad line", "type": "invalid_request_error"}})
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        self.files[file_id] = fields["file"]
        self.uploads.append({"id": file_id, "purpose": "batch"})
        return Scripted(200, {"id": file_id, "object": "file", "bytes": len(fields["file"]), "purpose": "batch",
                              "filename": "switchboard-batch.jsonl", "created_at": int(time.time())})  # fmt: skip

    def _create(self, body: Any) -> Scripted:
        if (
            not isinstance(body, dict)
            or body.get("endpoint") != "/v1/chat/completions"
            or body.get("completion_window") != "24h"
        ):
            return Scripted(400, {"error": {"message": "bad batch", "type": "invalid_request_error"}})
        content = self.files.get(str(body.get("input_file_id")))
        if content is None:
            return Scripted(400, {"error": {"message": "no input file", "type": "invalid_request_error"}})
        prompts, models = {}, {}
        for line in content.decode().splitlines():
            item = json.loads(line)
            prompts[item["custom_id"]] = json.dumps(item["body"]["messages"])
            models[item["custom_id"]] = item["body"].get("model", "")
        batch = FakeBatch(f"batch_{uuid.uuid4().hex[:24]}", prompts, models, time.time())
        batch.extra["input_file_id"] = body["input_file_id"]
        batch.extra["failed"] = self.fail_batches
        self.batches[batch.batch_id] = batch
        self.created += 1
        return Scripted(200, self._object(batch))

    def _object(self, batch: FakeBatch) -> dict[str, Any]:
        if batch.extra.get("failed"):
            error = {"code": "invalid_json_line", "message": "the input file could not be read", "line": 1}
            return {"id": batch.batch_id, "object": "batch", "endpoint": "/v1/chat/completions", "status": "failed",
                    "input_file_id": batch.extra["input_file_id"], "completion_window": "24h",
                    "output_file_id": None, "error_file_id": None, "created_at": int(batch.created_at),
                    "errors": {"object": "list", "data": [error]},
                    "request_counts": {"total": 0, "completed": 0, "failed": 0}}  # fmt: skip
        if batch.ended and "output_file_id" not in batch.extra:
            self._write_files(batch)
        done = [k for k in batch.results.values() if k == "succeeded"]
        failed = [k for k in batch.results.values() if k != "succeeded"]
        if batch.ended:
            status = (
                "cancelled"
                if batch.cancel_requested
                else "expired"
                if "expired" in batch.results.values() and not done
                else "completed"
            )
        else:
            status = "cancelling" if batch.cancel_requested else "in_progress"
        return {
            "id": batch.batch_id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": batch.extra["input_file_id"],
            "completion_window": "24h",
            "status": status,
            "output_file_id": batch.extra.get("output_file_id"),
            "error_file_id": batch.extra.get("error_file_id"),
            "created_at": int(batch.created_at),
            "expires_at": int(batch.created_at) + 24 * 3600,
            "request_counts": {"total": len(batch.prompts), "completed": len(done), "failed": len(failed)},
            "errors": None,
        }

    def _write_files(self, batch: FakeBatch) -> None:
        output, errors = [], []
        for cid, kind in batch.results.items():
            line: dict[str, Any] = {"id": f"batch_req_{uuid.uuid4().hex[:16]}", "custom_id": cid}
            if kind == "succeeded":
                body = {"model": batch.models[cid], "messages": json.loads(batch.prompts[cid])}
                answer = {"status_code": 200, "request_id": uuid.uuid4().hex, "body": self._completion(body, ANSWER)}
                line |= {"response": answer, "error": None}
                output.append(line)
            elif kind.startswith("errored:"):
                status = int(kind.split(":", 1)[1]) if kind.split(":", 1)[1].isdigit() else 400
                error = {"message": "the request failed in the batch", "type": "invalid_request_error", "code": None}
                failed = {"status_code": status, "request_id": uuid.uuid4().hex, "body": {"error": error}}
                line |= {"response": failed, "error": None}
                errors.append(line)
            else:
                code = "batch_expired" if kind == "expired" else "batch_cancelled"
                line |= {"response": None, "error": {"code": code, "message": f"request {kind}"}}
                errors.append(line)
        for key, lines in (("output_file_id", output), ("error_file_id", errors)):
            if lines:
                file_id = f"file-{uuid.uuid4().hex[:24]}"
                self.files[file_id] = ("\n".join(json.dumps(x) for x in lines) + "\n").encode()
                batch.extra[key] = file_id

    @staticmethod
    def _completion(body: Any, text: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "gpt-4o-mini") if isinstance(body, dict) else "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT, "total_tokens": USAGE_IN + USAGE_OUT},
        }
