"""The HTTP API's providers over a providers file: an API entry wins over the file's entry of the same id (it was
set later, on purpose, and is recorded with who and when); an API removal hides the file's provider. The file
itself is never rewritten, and `SwitchboardConfig.from_api` says which providers came from the API."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ledger import ProviderOverlay
from routing.config import BUILTIN_SOURCE, SwitchboardConfig, parse_provider
from routing.errors import ConfigError
from routing.registry import ProviderUpdateError
from routing.router import Router

log = logging.getLogger(__name__)


def apply_overlay(config: SwitchboardConfig, overlays: Iterable[ProviderOverlay]) -> SwitchboardConfig:
    """`config` with the API's providers set and removed. An entry that no longer validates (its provider type was
    uninstalled since) is skipped, so one stale row never stops every run."""
    providers = dict(config.providers)
    from_api = set(config.from_api)
    for overlay in overlays:
        if overlay.config is None:
            providers.pop(overlay.provider_id, None)
            from_api.add(overlay.provider_id)
            continue
        try:
            providers[overlay.provider_id] = parse_provider(overlay.provider_id, overlay.config, "<API overlay>")
        except ConfigError:
            continue
        from_api.add(overlay.provider_id)
    return config.model_copy(update={"providers": providers, "from_api": frozenset(from_api)})


def provider_source(config: SwitchboardConfig, provider_id: str) -> str:
    """`api` for a provider the API set, else `builtin` or `file`."""
    if provider_id in config.from_api:
        return "api"
    return "builtin" if config.source == BUILTIN_SOURCE else "file"


async def adopt_providers(router: Router, config: SwitchboardConfig) -> None:
    """Make `router`'s registry hold `config`'s enabled providers: add new ones, update changed ones (their circuit,
    quota and health carry over), remove the rest; the router picks the change up at once. Run on the engine
    loop. A provider that cannot be built is left as it was (ProviderUpdateError is logged, not raised)."""
    registry = router.registry
    wanted = {pid: cfg for pid, cfg in config.providers.items() if cfg.enabled}
    for provider in list(registry):
        if provider.provider_id not in wanted:
            await registry.remove(provider.provider_id)
    for provider_id, cfg in wanted.items():
        if provider_id in registry and registry.get(provider_id).config == cfg:
            continue
        try:
            await registry.update(provider_id, cfg)
        except ProviderUpdateError:
            log.warning("provider %s: its new settings could not be applied", provider_id, exc_info=True)
    router.sync_providers()


__all__ = ["adopt_providers", "apply_overlay", "provider_source"]
