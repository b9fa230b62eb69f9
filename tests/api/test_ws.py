"""`WS /api/v1/ws` on a real uvicorn on 127.0.0.1: the token in the first message, a snapshot, changes pushed,
heartbeats, and a client too slow to keep up dropped without holding up the others."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.feed import FeedSettings
from tests.api.api_kit import ADMIN_TOKEN, READ_TOKEN, auth
from tests.api.conftest import Served

pytestmark = pytest.mark.slow


async def _next(ws: ClientConnection, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next message of `kind` (others are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return message


def _silent_client(base: str, token: str) -> socket.socket:
    """A WebSocket client that joins (handshake, then its token in a masked text frame) and never reads again,
    with a small receive buffer: a client that stopped reading."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /api/v1/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = json.dumps({"token": token}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return sock


async def _joined(url: str, token: str = READ_TOKEN) -> ClientConnection:
    ws = await connect(url)
    await ws.send(json.dumps({"token": token}))
    return ws


@pytest.mark.parametrize("first", [json.dumps({"token": "wrong-token"}), "not json", json.dumps(["token"])])
async def test_a_socket_without_a_valid_token_first_is_closed(
    serve: Callable[[FeedSettings], Served], first: str
) -> None:
    served = serve(FeedSettings())
    async with connect(served.ws) as ws:
        await ws.send(first)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert served.feed.subscribers == 0


async def test_the_feed_sends_a_snapshot_then_pushes_a_quota_change(serve: Callable[[FeedSettings], Served]) -> None:
    served = serve(FeedSettings(interval_s=0.05, heartbeat_s=60))
    ws = await _joined(served.ws)
    try:
        hello = await _next(ws, "hello")
        assert hello["scope"] == "read" and hello["name"] == "viewer"
        snapshot = await _next(ws, "snapshot")
        assert [p["id"] for p in snapshot["providers"]] == ["fast", "backup", "remote"]
        fast = snapshot["providers"][0]
        assert fast["quota"][0]["limits"][0]["used"] == 0
        async with httpx.AsyncClient(base_url=served.base) as http:
            r = await http.post("/api/v1/tasks", json={"type": "code_review", "prompt": "p"}, headers=auth(ADMIN_TOKEN))
            assert r.json()["provider"] == "fast"
        async with asyncio.timeout(10):
            while True:
                pushed = (await _next(ws, "provider"))["provider"]
                if pushed["id"] == "fast" and pushed["quota"][0]["limits"][0]["used"] == 1:
                    break
        assert pushed["circuit"]["state"] == "closed"
    finally:
        await ws.close()


async def test_heartbeats_come_while_nothing_changes(serve: Callable[[FeedSettings], Served]) -> None:
    served = serve(FeedSettings(interval_s=0.05, heartbeat_s=0.2))
    ws = await _joined(served.ws)
    try:
        first = await _next(ws, "heartbeat")
        second = await _next(ws, "heartbeat")
        assert second["at"] > first["at"] and second["subscribers"] == 1
    finally:
        await ws.close()
    deadline = time.monotonic() + 5
    while served.feed.subscribers and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert served.feed.subscribers == 0  # a client that left is forgotten


async def test_a_slow_client_is_dropped_and_the_others_keep_up(serve: Callable[[FeedSettings], Served]) -> None:
    served = serve(FeedSettings(interval_s=0.05, heartbeat_s=60, queue_size=32, send_timeout_s=1.0))
    slow = _silent_client(served.base, READ_TOKEN)
    fast = await _joined(served.ws)
    await _next(fast, "snapshot")
    deadline = time.monotonic() + 10
    while served.feed.subscribers < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    padding = "x" * 262144
    received = 0

    async def read_all() -> None:
        nonlocal received
        while received < 200:
            if json.loads(await fast.recv())["type"] == "bulk":
                received += 1

    reader = asyncio.create_task(read_all())
    for i in range(200):  # 52 MB: more than the socket buffers between the server and the slow client hold
        served.feed.publish({"type": "bulk", "n": i, "pad": padding})  # from this thread: thread-safe
        await asyncio.sleep(0.005)
    async with asyncio.timeout(30):
        await reader
    assert received == 200  # the reading client got everything, not held up by the slow one
    assert served.feed.dropped >= 1
    assert served.feed.subscribers == 1
    await fast.close()
    slow.close()
