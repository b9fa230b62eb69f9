"""What the API's routes share: the providers config, the ledger, the single-task engine and the tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from api.auth import TokenSet
from batches import TaskEngine
from ledger import Ledger
from providers import SecretResolver
from routing import SwitchboardConfig


@dataclass
class ApiState:
    ledger: Ledger
    engine: TaskEngine
    tokens: TokenSet
    secrets: SecretResolver
    feed: Any = None  # api.feed.Feed, set by create_app (the feed module imports this one)
    closed: bool = False

    @property
    def config(self) -> SwitchboardConfig:
        """The providers file with the API's overlay, as the engine routes by it now."""
        return self.engine.config

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.engine.close()

    def reopen(self) -> None:
        """A fresh engine after `close` (an ASGI server may run the app's lifespan more than once)."""
        if self.closed:
            self.engine = TaskEngine.open(self.engine.follower.base, self.ledger, secrets=self.secrets)
            self.closed = False


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.switchboard
    return state


def state_feed(state: ApiState) -> Any:
    """The app's live feed (api.feed.Feed), to publish admin changes on."""
    return state.feed


__all__ = ["ApiState", "api_state", "state_feed"]
