"""`WS /api/v1/ws`: the live feed. The token comes in the first message, never in the URL (URLs end up in logs
and browser history): `{"token": "..."}` within `AUTH_TIMEOUT_S`, else the socket is closed with 1008.

Then the server sends `{"type": "hello", "scope": ...}`, a `snapshot` of every provider and recent batch runs,
and from then on `provider` (one provider's live state, when it changed), `runs` (batch progress, when it
changed) and `heartbeat` messages. A client too slow to keep up is closed with 1013 (try again later).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from api.feed import Feed
from api.state import ApiState

router = APIRouter()
AUTH_TIMEOUT_S = 10.0
POLICY_VIOLATION, TRY_AGAIN_LATER = 1008, 1013


async def _token(websocket: WebSocket) -> str | None:
    try:
        text = await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT_S)
        message = json.loads(text)
    except (TimeoutError, ValueError, KeyError):
        return None
    token = message.get("token") if isinstance(message, dict) else None
    return token if isinstance(token, str) else None


@router.websocket("/ws")
async def live_feed(websocket: WebSocket) -> None:
    state: ApiState = websocket.app.state.switchboard
    feed: Feed = websocket.app.state.feed
    await websocket.accept()
    principal = state.tokens.identify(await _token(websocket))
    if principal is None:
        await websocket.close(POLICY_VIOLATION, 'send {"token": ...} with a valid token first')
        return
    subscriber = feed.subscribe()
    reader: asyncio.Task[None] | None = None
    try:
        await websocket.send_json({"type": "hello", "scope": principal.scope, "name": principal.name})
        await websocket.send_json(await feed.snapshot())
        reader = asyncio.create_task(_drain(websocket))  # notices the client leaving
        while True:
            getter = asyncio.create_task(subscriber.queue.get())
            dropped = asyncio.create_task(subscriber.dropped.wait())
            done, _ = await asyncio.wait({getter, dropped, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
            dropped.cancel()
            if reader in done:
                return
            if subscriber.dropped.is_set():
                await websocket.close(TRY_AGAIN_LATER, "too slow: fell behind the live feed")
                return
            try:
                await asyncio.wait_for(websocket.send_json(getter.result()), feed.settings.send_timeout_s)
            except TimeoutError:
                feed.unsubscribe(subscriber)
                feed.dropped += 1
                return  # the connection goes with the handler: the client stopped reading
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        feed.unsubscribe(subscriber)
        if reader is not None:
            reader.cancel()


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends until it goes."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await websocket.receive_text()


__all__ = ["AUTH_TIMEOUT_S", "router"]
