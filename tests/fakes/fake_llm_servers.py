"""Real HTTP servers on 127.0.0.1 that answer like the Anthropic and OpenAI-compatible APIs.

Shapes, error bodies and headers follow /work/shared/PROVIDERS.md sections 2 and 3. Each server answers
realistically by default, takes a per-path queue of scripted responses (status, body, headers, delay, or a
dropped connection) and records every request it received.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Scripted:
    """One response to send: a dict body is sent as JSON, str/bytes as they are."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    # Close the connection without answering, as a crashed upstream would.
    drop: bool = False


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    # Lower-cased names.
    headers: dict[str, str]
    body: Any


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the provider's connection pool is exercised
    timeout = 5  # idle keep-alive connections free their thread soon after a test
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        parts = urlsplit(self.path)
        request = Received(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        reply = self.server.fake.respond(request)
        if reply.delay_s and self.server.fake.stopping.wait(reply.delay_s):
            return
        if reply.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = reply.body if isinstance(reply.body, bytes) else _encode(reply.body)
        try:
            self.send_response(reply.status)
            headers = {"content-type": "application/json", **reply.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up (a timeout test); nothing to answer


def _encode(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeServer


class FakeServer:
    """A threaded HTTP server on an ephemeral 127.0.0.1 port; use as a context manager."""

    main_path = "/"

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.stopping = threading.Event()
        self._scripts: dict[str, deque[Scripted]] = {}
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        # A short poll interval keeps shutdown (once per test) quick.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def script(self, *responses: Scripted, path: str | None = None) -> None:
        """Queue responses for `path` (default: the completion endpoint), served before the default answer."""
        with self._lock:
            self._scripts.setdefault(path or self.main_path, deque()).extend(responses)

    def respond(self, request: Received) -> Scripted:
        with self._lock:
            self.requests.append(request)
            queue = self._scripts.get(request.path)
            if queue:
                return queue.popleft()
        return self.default(request)

    def default(self, request: Received) -> Scripted:
        return Scripted(404, {"error": {"message": f"no route {request.path}"}})


def closed_port_url() -> str:
    """A 127.0.0.1 URL where nothing listens, so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- Anthropic Messages API -------------------------------------------------------------------------


def anthropic_error(status: int, error_type: str, message: str, **extra: Any) -> Scripted:
    """The real error body: {"type":"error","error":{"type","message"},"request_id"}."""
    error: dict[str, Any] = {"type": error_type, "message": message, **extra}
    return Scripted(status, {"type": "error", "error": error, "request_id": "req_011CTestError"})


_ANTHROPIC_SNAPSHOTS = {
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
}


def anthropic_message(
    text: str = "Hello!",
    *,
    model: str = "claude-sonnet-4-5-20250929",
    usage: dict[str, Any] | None = None,
    stop_reason: str = "end_turn",
) -> dict[str, Any]:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "model": model,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage
        or {
            "input_tokens": 12,
            "output_tokens": 6,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    }


def anthropic_ratelimit_headers(
    requests: tuple[int, int, str] = (50, 49, "2026-01-01T00:00:01Z"),
    tokens: tuple[int, int, str] = (50000, 49000, "2026-01-01T00:00:06Z"),
) -> dict[str, str]:
    """(limit, remaining, RFC 3339 reset) per family, as the recorded real response carries them."""
    headers = {"request-id": "req_011CTestOk"}
    for kind, (limit, remaining, reset) in {
        "requests": requests,
        "tokens": tokens,
        "input-tokens": tokens,
        "output-tokens": (tokens[0] // 5, tokens[1] // 5, tokens[2]),
    }.items():
        headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{kind}-remaining"] = str(remaining)
        headers[f"anthropic-ratelimit-{kind}-reset"] = reset
    return headers


class FakeAnthropic(FakeServer):
    """`POST /v1/messages` and `GET /v1/models`, checking the headers the real API requires."""

    main_path = "/v1/messages"

    def __init__(self, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key

    def default(self, request: Received) -> Scripted:
        key = request.headers.get("x-api-key")
        if key is None:
            return anthropic_error(401, "authentication_error", "x-api-key header is required")
        if self.api_key is not None and key != self.api_key:
            return anthropic_error(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            return anthropic_error(400, "invalid_request_error", "anthropic-version: header is required")
        if request.method == "GET" and request.path == "/v1/models":
            model = {"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5"}
            return Scripted(200, {"data": [model], "has_more": False, "first_id": model["id"], "last_id": model["id"]})
        if request.method == "POST" and request.path == self.main_path:
            body = request.body if isinstance(request.body, dict) else {}
            missing = [k for k in ("model", "max_tokens", "messages") if k not in body]
            if missing:
                return anthropic_error(400, "invalid_request_error", f"{missing[0]}: Field required")
            prompt = body["messages"][0]["content"]
            # The API answers with the snapshot of the model asked for (an alias resolves to its dated name).
            model = _ANTHROPIC_SNAPSHOTS.get(body["model"], body["model"])
            return Scripted(200, anthropic_message(f"echo: {prompt}", model=model), anthropic_ratelimit_headers())
        return anthropic_error(404, "not_found_error", f"Not found: {request.path}")


# --- OpenAI-compatible chat completions -------------------------------------------------------------


def openai_error(status: int, message: str, error_type: str, code: str | None = None) -> Scripted:
    """OpenAI's envelope: {"error":{"message","type","param","code"}}."""
    return Scripted(status, {"error": {"message": message, "type": error_type, "param": None, "code": code}})


def vllm_error(status: int, message: str, error_type: str = "BadRequestError") -> Scripted:
    """vLLM's older shape, with the HTTP status as an integer code (vllm-project/vllm#10463)."""
    return Scripted(status, {"object": "error", "message": message, "type": error_type, "param": None, "code": status})


def chat_completion(
    content: str | None = "Hello!", *, model: str = "gpt-4o-2024-08-06", usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-AB7X8Yz",
        "object": "chat.completion",
        "created": 1727000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage or {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21},
        "system_fingerprint": "fp_test",
    }


def openai_ratelimit_headers(
    requests: tuple[int, int, str] = (10000, 9999, "6ms"), tokens: tuple[int, int, str] = (30000, 29000, "2s")
) -> dict[str, str]:
    """(limit, remaining, duration-string reset) per family."""
    headers = {"x-request-id": "req_test_ok"}
    for kind, (limit, remaining, reset) in {"requests": requests, "tokens": tokens}.items():
        headers[f"x-ratelimit-limit-{kind}"] = str(limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
        headers[f"x-ratelimit-reset-{kind}"] = reset
    return headers


class FakeOpenAI(FakeServer):
    """`POST .../chat/completions` and `GET .../models` under `prefix`.

    `auth` "bearer" checks `Authorization`, "azure" checks `api-key` and requires `?api-version=`, None
    accepts anything (Ollama, vLLM without --api-key). Local servers send no rate-limit headers.
    """

    def __init__(
        self,
        prefix: str = "/v1",
        *,
        api_key: str | None = None,
        auth: str | None = "bearer",
        ratelimit_headers: bool = True,
    ) -> None:
        super().__init__()
        self.prefix = prefix
        self.main_path = f"{prefix}/chat/completions"
        self.api_key = api_key
        self.auth = auth
        self.ratelimit_headers = ratelimit_headers

    def default(self, request: Received) -> Scripted:
        if self.auth == "azure" and "api-version" not in request.query:
            return Scripted(404, {"error": {"code": "404", "message": "Resource not found"}})
        presented = (
            request.headers.get("api-key")
            if self.auth == "azure"
            else request.headers.get("authorization", "").removeprefix("Bearer ") or None
        )
        if self.auth is not None and (presented is None or (self.api_key and presented != self.api_key)):
            return openai_error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        headers = openai_ratelimit_headers() if self.ratelimit_headers else {}
        if request.method == "GET" and request.path.endswith("/models"):
            return Scripted(200, {"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]}, headers)
        if request.method == "POST" and request.path == self.main_path:
            body = request.body if isinstance(request.body, dict) else {}
            if "model" not in body or "messages" not in body:
                return openai_error(400, "you must provide a model parameter", "invalid_request_error")
            return Scripted(200, chat_completion(f"echo: {body['messages'][0]['content']}"), headers)
        return openai_error(404, f"Invalid URL (POST {request.path})", "invalid_request_error")
