"""Every route under /api/v1 needs a token of the right scope; tokens come from config or SWITCHBOARD_API_TOKEN."""

from __future__ import annotations

import httpx
import pytest

from api import TokenProblem, TokenSet
from routing import ApiToken
from tests.api.api_kit import ADMIN_TOKEN, READ_TOKEN, auth


def _api_routes(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    """Every (method, path) under /api/v1 the OpenAPI document lists."""
    app = client._transport.app  # type: ignore[attr-defined]
    return [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v1")
        for method in operations
    ]


def _concrete(path: str) -> str:
    return path.replace("{provider_id}", "fast").replace("{task_ref}", "api-20990101:t1")


async def test_every_api_route_refuses_a_request_without_a_known_token(client: httpx.AsyncClient) -> None:
    routes = _api_routes(client)
    assert len(routes) >= 6
    for method, path in routes:
        for headers in ({}, auth("not-a-token"), {"Authorization": "Basic YWRtaW46YWRtaW4="}):
            r = await client.request(method, _concrete(path), headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"


async def test_a_request_without_a_token_is_refused_before_its_query_is_judged(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/providers/usage?sinse=7d")
    assert r.status_code == 401, r.text
    r = await client.get("/api/v1/providers/usage?sinse=7d", headers=auth(READ_TOKEN))
    assert r.status_code == 422 and "sinse" in r.text


async def test_a_read_token_cannot_change_anything(client: httpx.AsyncClient) -> None:
    changing = [(m, p) for m, p in _api_routes(client) if m != "GET"]
    assert changing
    for method, path in changing:
        r = await client.request(method, _concrete(path), headers=auth(READ_TOKEN), json={})
        assert r.status_code == 403, (method, path, r.text)
        assert "admin scope" in r.json()["detail"]


async def test_a_read_token_reads(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/providers", headers=auth(READ_TOKEN))).status_code == 200


async def test_an_admin_token_changes(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/tasks", json={"type": "code_review", "prompt": "p"}, headers=auth(ADMIN_TOKEN))
    assert r.status_code == 200


def test_the_env_token_alone_is_one_admin_token() -> None:
    env = {"SWITCHBOARD_API_TOKEN": "only-token-123456"}
    tokens = TokenSet.from_settings([], secrets=lambda name: None, env=env.get)
    assert len(tokens) == 1
    principal = tokens.identify("only-token-123456")
    assert principal is not None and principal.scope == "admin" and principal.name == "admin"
    assert tokens.identify("only-token-12345") is None and tokens.identify("") is None


def test_configured_tokens_resolve_by_their_variable_and_an_unset_one_is_named() -> None:
    configured = [ApiToken(name="oncall", scope="read", token_env="ONCALL_TOKEN")]
    tokens = TokenSet.from_settings(configured, secrets={"ONCALL_TOKEN": "oncall-secret-1"}.get, env={}.get)
    principal = tokens.identify("oncall-secret-1")
    assert principal is not None and principal.name == "oncall" and principal.scope == "read"
    with pytest.raises(TokenProblem, match=r"api.tokens \(oncall\).token_env: ONCALL_TOKEN is not set"):
        TokenSet.from_settings(configured, secrets=lambda name: None, env={}.get)


def test_identify_compares_every_token() -> None:
    tokens = TokenSet([("a", "read", "token-aaaaaaaa"), ("b", "admin", "token-bbbbbbbb")])
    assert tokens.identify("token-bbbbbbbb").name == "b"  # type: ignore[union-attr]
    assert tokens.identify("token-aaaaaaaa").name == "a"  # type: ignore[union-attr]


async def test_a_body_over_the_limit_is_refused_before_it_is_read(make_client, providers_doc) -> None:  # type: ignore[no-untyped-def]
    providers_doc["api"] = {"max_body_bytes": 1000}
    async with make_client(providers_doc) as c:
        big = {"type": "code_review", "prompt": "x" * 2000}
        r = await c.post("/api/v1/tasks", json=big, headers=auth(ADMIN_TOKEN))
        assert r.status_code == 413 and "1000 bytes" in r.json()["detail"]
        small = await c.post("/api/v1/tasks", json={"type": "code_review", "prompt": "x"}, headers=auth(ADMIN_TOKEN))
        assert small.status_code == 200
