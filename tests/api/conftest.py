"""An API app over a fresh SQLite ledger, with an admin and a read token, driven in process by httpx, or served by
a real uvicorn on 127.0.0.1 (`serve`)."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from api import TokenSet, create_app
from api.feed import Feed, FeedSettings
from ledger import Ledger, open_ledger
from routing import parse_config
from tests.api.api_kit import ADMIN_TOKEN, PROVIDER_SECRET, PROVIDERS, READ_TOKEN
from tests.ports import free_port


@pytest.fixture
def tokens() -> TokenSet:
    return TokenSet([("ops", "admin", ADMIN_TOKEN), ("viewer", "read", READ_TOKEN)])


@pytest.fixture
def providers_doc() -> dict[str, Any]:
    return copy.deepcopy(PROVIDERS)  # a copy a test may change


@pytest.fixture
def ledger(ledger_url: str) -> Ledger:
    return open_ledger(ledger_url)


@pytest.fixture
def make_client(
    ledger: Ledger, tokens: TokenSet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[[dict[str, Any]], httpx.AsyncClient]]:
    monkeypatch.setenv("SB_TEST_REMOTE_KEY", PROVIDER_SECRET)
    apps = []

    def make(doc: dict[str, Any]) -> httpx.AsyncClient:
        file = tmp_path / "providers.yaml"  # on disk: a batch the API starts reads it again
        file.write_text(yaml.safe_dump(doc, sort_keys=False))
        app = create_app(parse_config(doc, str(file)), ledger, tokens)
        apps.append(app)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")

    yield make
    for app in apps:
        app.state.switchboard.close()


@pytest.fixture
async def client(
    make_client: Callable[[dict[str, Any]], httpx.AsyncClient], providers_doc: dict[str, Any]
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(providers_doc) as c:
        yield c


@dataclass
class Served:
    base: str
    feed: Feed

    @property
    def ws(self) -> str:
        return self.base.replace("http://", "ws://") + "/api/v1/ws"


@pytest.fixture
def serve(
    ledger: Ledger, tokens: TokenSet, providers_doc: dict[str, Any], tmp_path: Path
) -> Iterator[Callable[[FeedSettings], Served]]:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(settings: FeedSettings) -> Served:
        config = parse_config(providers_doc, str(tmp_path / "providers.yaml"))
        app = create_app(config, ledger, tokens, feed=settings)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        servers.append((server, thread))
        return Served(f"http://127.0.0.1:{port}", app.state.feed)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(30)
