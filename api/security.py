"""Route dependencies that admit a request by its bearer token and scope (401 without a known token, 403 with
too small a scope)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Principal, Scope
from api.errors import unprocessable
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


def known_query_only(request: Request) -> None:
    """Refuse (422) a query parameter the route does not take: a misspelled `?sinse=7d` must not be ignored."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed: set[str] = set()
    todo = [dependant]
    while todo:  # the route's own parameters and its dependencies'
        current = todo.pop()
        allowed.update(param.alias for param in current.query_params)
        todo.extend(current.dependencies)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "none"
        raise unprocessable(
            [f"unknown query parameter {name!r} (this route takes: {takes})" for name in unknown], "query"
        )


Reader = Annotated[Principal, Depends(require("read"))]
Admin = Annotated[Principal, Depends(require("admin"))]

__all__ = ["Admin", "Reader", "known_query_only", "require"]
