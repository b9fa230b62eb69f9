"""Route dependencies that admit a request by its bearer token and scope (401 without a known token, 403 with
too small a scope)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Principal, Scope
from api.state import api_state

_bearer = HTTPBearer(auto_error=False, description="a token from `api.tokens` or SWITCHBOARD_API_TOKEN")


def require(scope: Scope) -> Callable[..., Principal]:
    def admitted(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        principal = api_state(request).tokens.identify(credentials.credentials if credentials else None)
        if principal is None:
            raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        if not principal.allows(scope):
            raise HTTPException(403, f"this needs a token with the {scope} scope (yours: {principal.scope})")
        return principal

    return admitted


Reader = Annotated[Principal, Depends(require("read"))]
Admin = Annotated[Principal, Depends(require("admin"))]

__all__ = ["Admin", "Reader", "require"]
