"""An API app over a fresh SQLite ledger, with an admin and a read token, driven in process by httpx."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api import TokenSet, create_app
from ledger import Ledger, open_ledger
from routing import parse_config
from tests.api.api_kit import ADMIN_TOKEN, PROVIDER_SECRET, PROVIDERS, READ_TOKEN


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
        config = parse_config(doc, str(tmp_path / "providers.yaml"))
        app = create_app(config, ledger, tokens)
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
