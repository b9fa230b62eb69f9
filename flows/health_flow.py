"""The scheduled `provider_health` flow: probe every provider, store its health, emit an event on a change."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.events import emit_event

from flows.events import prefect_event_name
from flows.secrets import secret_resolver
from ledger import open_ledger
from providers import AIProvider, HealthStatus, ProviderHealth, utc_now
from routing import ProviderRegistry, engine_loop, load_config

HEALTH_CHANGED = "provider.health_changed"
ARTIFACT_KEY = "provider-health"


@flow(name="provider-health", persist_result=False)
def provider_health(providers: str | None = None, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Probe each configured provider (no cache), record the result, and report changes since the last probe.

    `providers` is a providers file (default: $SWITCHBOARD_PROVIDERS, else the built-in mocks).
    """
    logger = get_run_logger()
    config = load_config(providers)
    ledger = open_ledger()
    previous = {row.provider_id: row.status for row in ledger.provider_rows()}
    registry = ProviderRegistry.from_configs(config.providers, secrets=secret_resolver())
    try:
        # Providers' HTTP clients belong to the engine loop (routing/loop.py), so probes run there too.
        results = engine_loop().run(_probe_all(list(registry), timeout_s))
    finally:
        engine_loop().run(registry.aclose(), cleanup=True)

    rows: list[dict[str, Any]] = []
    for provider, health in results:
        pid, status = provider.provider_id, health.status.value
        before = previous.get(pid, HealthStatus.UNKNOWN.value)
        record = {
            "status": status,
            "latency_ms": health.latency_ms,
            "detail": health.detail,
            "checked_at": health.checked_at.isoformat(),
        }
        ledger.record_provider_health(
            pid, status=status, health=record, type_name=provider.type_name, priority=provider.config.priority
        )
        changed = status != before
        if changed:
            change = {"previous": before, **record}
            ledger.record_provider_event(pid, "health_changed", change)
            emit_event(
                event=prefect_event_name(HEALTH_CHANGED),
                resource={
                    "prefect.resource.id": f"switchboard.provider.{pid}",
                    "prefect.resource.name": pid,
                    "switchboard.provider.type": provider.type_name,
                },
                payload=change,
            )
            logger.info("provider %s: %s -> %s %s", pid, before, status, health.detail)
        rows.append(
            {
                "provider": pid,
                "type": provider.type_name,
                "status": status,
                "previous": before,
                "changed": changed,
                "latency_ms": None if health.latency_ms is None else round(health.latency_ms, 1),
                "detail": health.detail,
            }
        )
    create_table_artifact(
        table=rows,
        key=ARTIFACT_KEY,
        description=f"Provider health at {utc_now():%Y-%m-%d %H:%M} UTC ({sum(r['changed'] for r in rows)} changed)",
    )
    return rows


async def _probe_all(providers: list[AIProvider], timeout_s: float) -> list[tuple[AIProvider, ProviderHealth]]:
    healths = await asyncio.gather(*(_probe(p, timeout_s) for p in providers))
    return list(zip(providers, healths, strict=True))


async def _probe(provider: AIProvider, timeout_s: float) -> ProviderHealth:
    # health() turns ProviderErrors into UNHEALTHY itself; a hang or a bug must not sink the other probes.
    try:
        return await asyncio.wait_for(provider.health(use_cache=False), timeout_s)
    except TimeoutError:
        detail = f"no answer to the health probe within {timeout_s:g} s"
    except Exception as exc:
        detail = f"health probe failed: {type(exc).__name__}: {exc}"
    return ProviderHealth(status=HealthStatus.UNHEALTHY, checked_at=utc_now(), detail=detail)


__all__ = ["ARTIFACT_KEY", "HEALTH_CHANGED", "provider_health"]
