"""`/api/v1/providers`: configuration, capabilities and live status; health per subscription; usage."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request

from api.describe import describe_provider
from api.models import ProviderList, ProviderOut
from api.security import Reader
from api.state import ApiState, api_state
from routing import ProviderLiveView, engine_loop, provider_views

router = APIRouter(prefix="/providers", tags=["providers"])
# `usage` is a route of its own here, so no provider may be called that.
RESERVED_IDS = frozenset({"usage"})
GroupBy = Literal["provider", "team", "task_type", "day"]


async def live_views(state: ApiState) -> dict[str, ProviderLiveView]:
    """Every provider's live state, taken on the engine loop that owns it."""
    views = await asyncio.wrap_future(engine_loop().submit(provider_views(state.engine.router)))
    return {v.id: v for v in views}


def _describe(state: ApiState, provider_id: str, live: dict[str, ProviderLiveView]) -> ProviderOut:
    cfg = state.config.providers[provider_id]
    return describe_provider(
        provider_id, cfg, source=state.source_kind, secrets=state.secrets, status=live.get(provider_id)
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


@router.get("/usage", summary="Usage and cost report (as `switchboard report --format json`)")
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
        raise HTTPException(422, str(exc)) from None
    settings = report_settings(state.config)
    built = await asyncio.to_thread(build_report, state.ledger.engine, window, team=team, settings=settings)
    document = built.to_json()
    if group_by is not None:
        table = f"by_{group_by}"
        document = {"period": document["period"], "totals": document["totals"], table: document[table]}
    return document


@router.get("/{provider_id}", response_model=ProviderOut, summary="One provider")
async def get_provider(request: Request, provider_id: str, _: Reader) -> ProviderOut:
    state = api_state(request)
    if provider_id not in state.config.providers:
        raise HTTPException(404, f"no provider {provider_id!r}")
    return _describe(state, provider_id, await live_views(state))


@router.get("/{provider_id}/health", response_model=ProviderLiveView, summary="Circuit, latency, errors, quota")
async def provider_health(request: Request, provider_id: str, _: Reader) -> ProviderLiveView:
    state = api_state(request)
    live = await live_views(state)
    if provider_id not in live:
        known = provider_id in state.config.providers
        raise HTTPException(404, f"provider {provider_id!r} is disabled" if known else f"no provider {provider_id!r}")
    return live[provider_id]


__all__ = ["RESERVED_IDS", "live_views", "router"]
