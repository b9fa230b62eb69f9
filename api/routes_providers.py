"""`/api/v1/providers`: configuration, capabilities and live status; health per subscription; usage."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request

from api.describe import describe_provider
from api.errors import unprocessable
from api.models import ProviderCreate, ProviderList, ProviderOut, ProviderReset, ProviderSettings, errors
from api.security import Admin, Reader
from api.state import ApiState, api_state, state_feed
from batches import this_owner
from ledger import record_admin_change, set_provider_overlay
from providers import safe_url
from routing import (
    PROVIDER_ID_PATTERN,
    ConfigError,
    ProviderLiveView,
    describe_trouble,
    engine_loop,
    parse_provider,
    provider_source,
    provider_views,
    reset_everywhere,
    reset_here,
)

router = APIRouter(prefix="/providers", tags=["providers"])
GroupBy = Literal["provider", "team", "task_type", "day"]


async def live_views(state: ApiState) -> dict[str, ProviderLiveView]:
    """Every provider's live state, taken on the engine loop that owns it (after adopting the API's latest
    provider changes, made here or by another server)."""
    await state.engine.follow()
    views = await asyncio.wrap_future(engine_loop().submit(provider_views(state.engine.router)))
    return {v.id: v for v in views}


def _describe(state: ApiState, provider_id: str, live: dict[str, ProviderLiveView]) -> ProviderOut:
    config = state.config
    return describe_provider(
        provider_id,
        config.providers[provider_id],
        source=provider_source(config, provider_id),
        secrets=state.secrets,
        status=live.get(provider_id),
    )


@router.get("", response_model=ProviderList, summary="List providers")
async def list_providers(request: Request, _: Reader) -> ProviderList:
    state = api_state(request)
    live = await live_views(state)
    return ProviderList(
        source=state.config.source,
        strategy=state.config.strategy,
        providers=[_describe(state, pid, live) for pid in state.config.providers],
    )


@router.get("/usage", responses=errors(422), summary="Usage and cost report (as `switchboard report --format json`)")
async def usage(
    request: Request,
    _: Reader,
    since: Annotated[str, Query(max_length=40, description="a duration back from `until` (7d, 12h) or a date")] = "7d",
    until: Annotated[str | None, Query(max_length=40, description="end (exclusive); default now")] = None,
    team: Annotated[str | None, Query(max_length=200)] = None,
    group_by: Annotated[GroupBy | None, Query(description="only the totals and the `by_<group>` table")] = None,
) -> dict[str, Any]:
    # analytics and planning bring pandas: imported on first use, not when the server starts
    from analytics import build_report, report_window
    from planning import report_settings

    state = api_state(request)
    try:
        window = report_window(since, until)
    except ValueError as exc:
        raise unprocessable(str(exc), "query") from None
    settings = report_settings(state.config)
    built = await asyncio.to_thread(build_report, state.ledger.engine, window, team=team, settings=settings)
    document = built.to_json()
    if group_by is not None:
        table = f"by_{group_by}"
        document = {"period": document["period"], "totals": document["totals"], table: document[table]}
    return document


@router.get("/{provider_id}", responses=errors(404), response_model=ProviderOut, summary="One provider")
async def get_provider(request: Request, provider_id: str, _: Reader) -> ProviderOut:
    state = api_state(request)
    if provider_id not in state.config.providers:
        raise HTTPException(404, f"no provider {provider_id!r}")
    return _describe(state, provider_id, await live_views(state))


def _settings(provider_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """A provider's settings from a request body, checked as a providers file's entry is; 422 says what is wrong."""
    if not re.fullmatch(PROVIDER_ID_PATTERN, provider_id):
        raise unprocessable(
            f"provider id {provider_id!r}: use 1-100 letters, digits, '_', '.' or '-'", "path", "provider_id"
        )
    try:
        config = parse_provider(provider_id, body, "request body")
    except ConfigError as exc:
        raise unprocessable(exc.problems, "body") from None
    url = config.base_url or ""
    if safe_url(url) != url.rstrip("?"):
        raise unprocessable(
            f"providers.{provider_id}.base_url: no user info or query (a credential goes in api_key_env)", "body"
        )
    return config.model_dump(mode="json", exclude_defaults=True) | {"type": config.type}


async def _store(state: ApiState, provider_id: str, settings: dict[str, Any] | None, who: str, action: str) -> None:
    await asyncio.to_thread(set_provider_overlay, state.ledger, provider_id, settings, who=who, action=action)
    await state.engine.follow(force=True)
    state_feed(state).publish({"type": "providers_changed", "provider": provider_id, "action": action, "by": who})


@router.post(
    "",
    responses=errors(409, 413, 422),
    response_model=ProviderOut,
    status_code=201,
    summary="Add a provider (recorded as from the API)",
)
async def add_provider(request: Request, body: ProviderCreate, principal: Admin) -> ProviderOut:
    state = api_state(request)
    await state.engine.follow()
    if body.id in state.config.providers:
        raise HTTPException(409, f"provider {body.id!r} exists; PUT /providers/{body.id} changes it")
    await _store(state, body.id, _settings(body.id, body.settings), principal.name, "provider.create")
    return _describe(state, body.id, await live_views(state))


@router.put(
    "/{provider_id}",
    responses=errors(413, 422),
    response_model=ProviderOut,
    summary="Set a provider's settings (recorded as from the API)",
)
async def put_provider(request: Request, provider_id: str, body: ProviderSettings, principal: Admin) -> ProviderOut:
    state = api_state(request)
    await _store(state, provider_id, _settings(provider_id, body.root), principal.name, "provider.update")
    return _describe(state, provider_id, await live_views(state))


@router.delete(
    "/{provider_id}", responses=errors(404), status_code=204, summary="Remove a provider (recorded as from the API)"
)
async def delete_provider(request: Request, provider_id: str, principal: Admin) -> None:
    state = api_state(request)
    await state.engine.follow()
    if provider_id not in state.config.providers:
        raise HTTPException(404, f"no provider {provider_id!r}")
    await _store(state, provider_id, None, principal.name, "provider.delete")


@router.post(
    "/{provider_id}/reset",
    responses=errors(404, 422),
    response_model=ProviderReset,
    summary="Close a circuit, clear quota blocks",
)
async def reset_provider(
    request: Request,
    provider_id: str,
    principal: Admin,
    subscription: Annotated[str | None, Query(max_length=100, description="only this subscription's blocks")] = None,
) -> ProviderReset:
    """Closes the provider's circuit and clears its quota blocks, cool-offs and window usage, in this server's
    router at once and, through the shared limits store and a `provider.reset` event, in every other router (as
    `switchboard providers reset` does). `cleared` says what this server's router had in force."""
    state = api_state(request)
    live = await live_views(state)
    if provider_id not in live:
        raise HTTPException(404, f"no provider {provider_id!r}")
    config = state.config.providers[provider_id]
    names = [s.name for s in getattr(config, "subscriptions", None) or []]
    if subscription is not None and subscription not in names:
        raise HTTPException(404, f"provider {provider_id!r} has no subscription {subscription!r}")
    router_ = state.engine.router

    async def reset() -> list[str]:
        found = describe_trouble(router_, provider_id, subscription)
        reset_here(router_, provider_id, subscription)
        return found

    cleared = await asyncio.wrap_future(engine_loop().submit(reset()))
    await asyncio.to_thread(reset_everywhere, state.ledger, this_owner(), provider_id, names, subscription)
    target = f"provider:{provider_id}"
    detail = {"cleared": cleared, "subscription": subscription}
    await asyncio.to_thread(
        record_admin_change, state.ledger, who=principal.name, action="provider.reset", target=target, detail=detail
    )
    return ProviderReset(id=provider_id, cleared=cleared, status=(await live_views(state))[provider_id])


@router.get(
    "/{provider_id}/health",
    responses=errors(404),
    response_model=ProviderLiveView,
    summary="Circuit, latency, errors, quota",
)
async def provider_health(request: Request, provider_id: str, _: Reader) -> ProviderLiveView:
    state = api_state(request)
    live = await live_views(state)
    if provider_id not in live:
        known = provider_id in state.config.providers
        raise HTTPException(404, f"provider {provider_id!r} is disabled" if known else f"no provider {provider_id!r}")
    return live[provider_id]


__all__ = ["live_views", "router"]
