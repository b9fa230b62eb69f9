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
        provider = provider_class(config.type)(provider_id, config, secrets=self._secrets)
        self._providers[provider_id] = provider
        return provider

    def add_instance(self, provider: AIProvider) -> None:
        self._providers[provider.provider_id] = provider

    async def remove(self, provider_id: str) -> None:
        provider = self._providers.pop(provider_id)
        await provider.aclose()

    async def update(self, provider_id: str, config: ProviderConfig) -> AIProvider:
        """Replace a provider's config; the old instance is closed after the new one is in place."""
        old = self._providers.pop(provider_id, None)
        new = self.add(provider_id, config)
        if old is not None:
            await old.aclose()
        return new

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
