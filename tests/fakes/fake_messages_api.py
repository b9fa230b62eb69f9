"""A stand-in for the Anthropic Messages API as the real Claude Code CLI talks to it (ANTHROPIC_BASE_URL).

Checked against `@anthropic-ai/claude-code` 2.1.197 (PROVIDERS.md 1.3a): the CLI first sends `HEAD /` (a
connection warm-up), then `POST /v1/messages?beta=true` with `"stream": true`, and reads the answer as
server-sent events (message_start, content_block_start, content_block_delta, content_block_stop,
message_delta, message_stop). A config-dir login sends `authorization: Bearer <accessToken>`, an API key
`x-api-key`. With CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 nothing else is called; other paths answer 404.

Each credential (key or token value) has a mode, answered on every request that presents it:

    ok               200, streamed; rate-limit headers: `anthropic-ratelimit-unified-*` (status allowed, the
                     five-hour and seven-day utilisation and resets) and `anthropic-ratelimit-requests-*`
    allowed_warning  as ok, with `anthropic-ratelimit-unified-5h-surpassed-threshold` and a 5h utilisation of
                     0.92: the CLI reports `rate_limit_event` status allowed_warning
    usage_limit      429 with `anthropic-ratelimit-unified-status: rejected`, representative claim five_hour and
                     its reset: a subscription login prints a rejected event and "You've hit your session limit"
    unauthorized     401 authentication_error
    rate_limited     429 rate_limit_error with `retry-after: 30`
    overloaded       529 overloaded_error

Every request is recorded (method, path, the credential presented, whether it streamed), so tests count the
requests each credential received. Unknown credentials get 401.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

Mode = Literal["ok", "allowed_warning", "usage_limit", "unauthorized", "rate_limited", "overloaded"]
ANSWER = "Stand-in answer."
FIVE_HOURS_S = 5 * 3600
SEVEN_DAYS_S = 7 * 24 * 3600


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    credential: str | None  # the x-api-key or bearer token value presented
    scheme: str | None  # "x-api-key" | "bearer" | None
    streamed: bool
    model: str | None


class FakeMessagesApi:
    """A threaded HTTP server on an ephemeral 127.0.0.1 port; use as a context manager."""

    def __init__(self, modes: dict[str, Mode] | None = None, *, reset_in_s: int = 3 * 3600) -> None:
        self.modes: dict[str, Mode] = dict(modes or {})
        self.requests: list[ApiRequest] = []
        self.reset_at = int(time.time()) + reset_in_s
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.api = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def messages(self, credential: str) -> int:
        """How many `POST /v1/messages` requests presented `credential`."""
        with self._lock:
            return sum(1 for r in self.requests if r.credential == credential and r.path == "/v1/messages")

    def record(self, request: ApiRequest) -> Mode | None:
        with self._lock:
            self.requests.append(request)
            return self.modes.get(request.credential or "")

    # --- headers ----------------------------------------------------------------------------------

    def unified_headers(self, mode: Mode) -> dict[str, str]:
        """The subscription rate-limit family the CLI reads (`anthropic-ratelimit-unified-*`)."""
        now = int(time.time())
        five_hour_reset, seven_day_reset = now + 2 * 3600, now + 3 * 24 * 3600
        if mode == "usage_limit":
            return {
                "anthropic-ratelimit-unified-status": "rejected",
                "anthropic-ratelimit-unified-representative-claim": "five_hour",
                "anthropic-ratelimit-unified-reset": str(self.reset_at),
                "anthropic-ratelimit-unified-5h-utilization": "1.0",
                "anthropic-ratelimit-unified-5h-reset": str(self.reset_at),
                "anthropic-ratelimit-unified-fallback": "unavailable",
            }
        utilization = "0.92" if mode == "allowed_warning" else "0.12"
        headers = {
            "anthropic-ratelimit-unified-status": "allowed",
            "anthropic-ratelimit-unified-representative-claim": "five_hour",
            "anthropic-ratelimit-unified-reset": str(five_hour_reset),
            "anthropic-ratelimit-unified-5h-utilization": utilization,
            "anthropic-ratelimit-unified-5h-reset": str(five_hour_reset),
            "anthropic-ratelimit-unified-7d-utilization": "0.3",
            "anthropic-ratelimit-unified-7d-reset": str(seven_day_reset),
            "anthropic-ratelimit-unified-fallback": "unavailable",
        }
        if mode == "allowed_warning":
            headers["anthropic-ratelimit-unified-5h-surpassed-threshold"] = "0.9"
        return headers


def _error(status: int, error_type: str, message: str) -> bytes:
    return json.dumps(
        {"type": "error", "error": {"type": error_type, "message": message}, "request_id": _id("req")}
    ).encode()


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _sse(model: str, text: str) -> list[bytes]:
    """The events of one streamed text answer, as the Messages API sends them."""
    message = {
        "id": _id("msg"),
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": model,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 42,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": message}),
        ("content_block_start",
         {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta",
         {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 7}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def api(self) -> FakeMessagesApi:
        return self.server.api  # type: ignore[attr-defined,no-any-return]

    def do_HEAD(self) -> None:
        self.api.record(ApiRequest("HEAD", self.path, None, None, False, None))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        path = self.path.split("?", 1)[0]
        key = self.headers.get("x-api-key")
        bearer = (self.headers.get("authorization") or "").removeprefix("Bearer ").strip() or None
        credential, scheme = (key, "x-api-key") if key else (bearer, "bearer") if bearer else (None, None)
        streamed = bool(body.get("stream")) if isinstance(body, dict) else False
        model = body.get("model") if isinstance(body, dict) else None
        mode = self.api.record(ApiRequest(self.command, path, credential, scheme, streamed, model))
        if path != "/v1/messages" or self.command != "POST":
            return self._send(404, _error(404, "not_found_error", f"Not found: {path}"))
        if mode is None or mode == "unauthorized":
            return self._send(401, _error(401, "authentication_error", "invalid x-api-key"))
        if mode == "rate_limited":
            error = _error(429, "rate_limit_error", "Number of requests has exceeded your rate limit.")
            return self._send(429, error, {"retry-after": "30"})
        if mode == "overloaded":
            return self._send(529, _error(529, "overloaded_error", "Overloaded"))
        headers = self.api.unified_headers(mode) if scheme == "bearer" else self._request_headers()
        if mode == "usage_limit":
            return self._send(429, _error(429, "rate_limit_error", "Rate limited"), headers)
        if not streamed:
            answer = {"id": _id("msg"), "type": "message", "role": "assistant", "model": model,
                      "content": [{"type": "text", "text": ANSWER}], "stop_reason": "end_turn", "stop_sequence": None,
                      "usage": {"input_tokens": 42, "output_tokens": 7}}  # fmt: skip
            return self._send(200, json.dumps(answer).encode(), headers)
        self.send_response(200)
        for name, value in {"content-type": "text/event-stream", "cache-control": "no-cache", **headers}.items():
            self.send_header(name, value)
        self.send_header("request-id", _id("req"))
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for event in _sse(str(model or "claude-sonnet-4-5"), ANSWER):
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the CLI was killed mid-answer

    @staticmethod
    def _request_headers() -> dict[str, str]:
        reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
        return {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": reset,
        }

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            for name, value in {"content-type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("request-id", _id("req"))
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass
