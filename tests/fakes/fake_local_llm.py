"""A stand-in for a local Ollama or vLLM on 127.0.0.1, speaking their real wire format for what `switchboard init`
and the providers' health checks ask: Ollama's `GET /api/tags`, and the OpenAI-compatible `GET /v1/models`
both serve; `POST /v1/chat/completions` answers with a fixed text and real-looking usage.

Run it: `python tests/fakes/fake_local_llm.py --kind ollama --port 11434` (prints the port once it listens).
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = ("llama3.1:8b", "qwen2.5-coder:7b")


def make_server(kind: str, port: int = 0, models: tuple[str, ...] = MODELS) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/api/tags" and kind == "ollama":
                self._json(200, {"models": [{"name": m, "model": m, "size": 4_700_000_000} for m in models]})
            elif self.path == "/v1/models":
                self._json(
                    200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": kind} for m in models]}
                )
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            if self.path != "/v1/chat/completions":
                self._json(404, {"error": "not found"})
                return
            self._json(
                200,
                {
                    "id": "chatcmpl-local",
                    "object": "chat.completion",
                    "model": request.get("model", models[0]),
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "OK"}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
                },
            )

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def serve_in_thread(kind: str, models: tuple[str, ...] = MODELS) -> tuple[ThreadingHTTPServer, str]:
    server = make_server(kind, 0, models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("ollama", "vllm"), default="ollama")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = make_server(args.kind, args.port)
    print(server.server_address[1], flush=True)
    server.serve_forever()
