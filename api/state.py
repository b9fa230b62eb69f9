"""What the API's routes share: the providers config, the ledger, the single-task engine and the tokens."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from api.auth import TokenSet
from batches import TaskEngine
from ledger import Ledger
from providers import SecretResolver
from routing import BUILTIN_SOURCE, SwitchboardConfig


@dataclass
class ApiState:
    config: SwitchboardConfig
    ledger: Ledger
    engine: TaskEngine
    tokens: TokenSet
    secrets: SecretResolver
    closed: bool = False

    @property
    def source_kind(self) -> str:
        return "builtin" if self.config.source == BUILTIN_SOURCE else "file"

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.engine.close()


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.switchboard
    return state


__all__ = ["ApiState", "api_state"]
