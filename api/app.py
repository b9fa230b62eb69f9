"""The FastAPI app: `/healthz` open, everything under `/api/v1` behind a bearer token, bodies bounded in size."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from api import routes_batches, routes_providers, routes_tasks, routes_ws
from api.auth import TokenSet
from api.feed import Feed, FeedSettings
from api.models import Healthz, Problem
from api.security import known_query_only, require
from api.state import ApiState
from batches import TaskEngine
from ledger import Ledger
from providers import SecretResolver, env_secrets
from routing import SwitchboardConfig

API_PREFIX = "/api/v1"
STATIC = Path(__file__).with_name("static")
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no bearer token, or an unknown one"},
    403: {"model": Problem, "description": "the token's scope does not allow this"},
}


class BodyLimit:
    """Refuse (413) a request whose body is larger than `max_bytes`, declared or as it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def bounded() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, bounded, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": f"request body larger than {self.max_bytes} bytes"}, status_code=413)
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class AllowHeader:
    """A 405's `Allow` lists every method the path has. Starlette answers with the methods of the first route
    that matched the path only, and FastAPI makes one route per method (GET and POST /providers are two)."""

    def __init__(self, app: ASGIApp, methods_of: Callable[[str], list[str]]) -> None:
        self.app, self.methods_of = app, methods_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_allow(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = self.methods_of(scope["path"])
                if methods:
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                    message = {**message, "headers": [*headers, (b"allow", ", ".join(methods).encode())]}
            await send(message)

        await self.app(scope, receive, send_allow)


def _methods_by_path(app: FastAPI) -> Callable[[str], list[str]]:
    """path -> the methods the OpenAPI document lists for it (built on first use)."""
    table: list[tuple[re.Pattern[str], list[str]]] = []

    def methods_of(path: str) -> list[str]:
        if not table:
            for template, operations in app.openapi()["paths"].items():
                pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
                table.append((re.compile(f"^{pattern}$"), sorted(m.upper() for m in operations)))
        return next((methods for pattern, methods in table if pattern.match(path)), [])

    return methods_of


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    await asyncio.to_thread(app.state.switchboard.reopen)  # built by create_app; again after a shutdown
    yield
    await app.state.feed.close()
    await asyncio.to_thread(app.state.switchboard.close)


def create_app(
    config: SwitchboardConfig,
    ledger: Ledger,
    tokens: TokenSet,
    *,
    secrets: SecretResolver = env_secrets,
    engine: TaskEngine | None = None,
    feed: FeedSettings | None = None,
) -> FastAPI:
    """The API over `config`'s providers and `ledger`; its single-task engine is built here (closed on shutdown)."""
    state = ApiState(
        ledger=ledger,
        engine=engine or TaskEngine.open(config, ledger, secrets=secrets),
        tokens=tokens,
        secrets=secrets,
    )
    app = FastAPI(
        title="Switchboard",
        version="1",
        summary="Route AI tasks across providers; see and steer providers, tasks and batches.",
        lifespan=_lifespan,
    )
    app.state.switchboard = state
    app.state.feed = state.feed = Feed(state, feed)

    app.add_middleware(BodyLimit, max_bytes=config.api.max_body_bytes)
    app.add_middleware(AllowHeader, methods_of=_methods_by_path(app))

    @app.get("/healthz", response_model=Healthz, tags=["health"], summary="Liveness (no token needed)")
    async def healthz() -> Healthz:
        return Healthz(providers=len(state.engine.registry))

    @app.get("/", include_in_schema=False)
    async def board() -> FileResponse:
        """The provider board (open: it asks for a token and keeps it in the browser)."""
        return FileResponse(STATIC / "board.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(ValueError)
    async def _bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]}, status_code=422)

    # A token first (401 before anything about the request is judged), then no unknown query parameter.
    strict = [Depends(require("read")), Depends(known_query_only)]
    app.include_router(routes_providers.router, prefix=API_PREFIX, responses=_ERRORS, dependencies=strict)
    app.include_router(routes_tasks.router, prefix=API_PREFIX, responses=_ERRORS, dependencies=strict)
    app.include_router(routes_batches.router, prefix=API_PREFIX, responses=_ERRORS, dependencies=strict)
    app.include_router(routes_ws.router, prefix=API_PREFIX)
    return app


__all__ = ["API_PREFIX", "BodyLimit", "create_app"]
