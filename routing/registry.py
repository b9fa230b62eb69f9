"""Provider types found through the `switchboard.providers` entry-point group, and the live provider set."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from providers import AIProvider, ProviderConfig, SecretResolver, env_secrets

ENTRY_POINT_GROUP = "switchboard.providers"


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def provider_type_names() -> list[str]:
    return sorted(_entry_points())


@cache
def provider_class(type_name: str) -> type[AIProvider]:
    """The provider class registered under `type_name`; KeyError names the known types."""
    try:
        entry = _entry_points()[type_name]
    except KeyError:
        raise KeyError(f"unknown provider type {type_name!r}; known: {', '.join(provider_type_names())}") from None
    cls = entry.load()
    if not (isinstance(cls, type) and issubclass(cls, AIProvider)):
        raise TypeError(f"entry point {entry.value} for {type_name!r} is not an AIProvider subclass")
    return cls


class ProviderUpdateError(ValueError):
    """A provider could not be built from its new config; the registry is unchanged."""


class ProviderRegistry:
    """The providers a router may use, by config name; can change while running."""

    def __init__(self, secrets: SecretResolver = env_secrets) -> None:
        self._secrets = secrets
        self._providers: dict[str, AIProvider] = {}

    @classmethod
    def from_configs(
        cls, configs: Mapping[str, ProviderConfig], secrets: SecretResolver = env_secrets
    ) -> ProviderRegistry:
        registry = cls(secrets)
        for provider_id, config in configs.items():
            if config.enabled:
                registry.add(provider_id, config)
        return registry

    def add(self, provider_id: str, config: ProviderConfig) -> AIProvider:
        if provider_id in self._providers:
            raise ValueError(f"provider {provider_id!r} is already registered")
        provider = self._build(provider_id, config)
        self._providers[provider_id] = provider
        return provider

    def add_instance(self, provider: AIProvider) -> None:
        self._providers[provider.provider_id] = provider

    async def remove(self, provider_id: str) -> None:
        provider = self._providers.pop(provider_id)
        await provider.aclose()

    async def update(self, provider_id: str, config: ProviderConfig) -> AIProvider:
        """Replace a provider's config; the old instance is closed after the new one is in place.

        The new instance is built first: if that fails (unknown type, bad settings) the old one stays
        registered and running, and `ProviderUpdateError` says why. The router keeps the provider's quota
        windows, circuit and health across the swap (`Router.sync_providers`).
        """
        try:
            new = self._build(provider_id, config)
        except Exception as exc:
            reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            kept = "the old one stays in place" if provider_id in self._providers else "nothing was added"
            raise ProviderUpdateError(f"provider {provider_id!r}: update failed ({reason}); {kept}") from exc
        old = self._providers.get(provider_id)
        self._providers[provider_id] = new
        if old is not None:
            await old.aclose()
        return new

    def _build(self, provider_id: str, config: ProviderConfig) -> AIProvider:
        return provider_class(config.type)(provider_id, config, secrets=self._secrets)

    def get(self, provider_id: str) -> AIProvider:
        return self._providers[provider_id]

    def __contains__(self, provider_id: object) -> bool:
        return provider_id in self._providers

    def __iter__(self) -> Iterator[AIProvider]:
        return iter(list(self._providers.values()))

    def __len__(self) -> int:
        return len(self._providers)

    async def aclose(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self._providers.values()), return_exceptions=True)
        self._providers.clear()
