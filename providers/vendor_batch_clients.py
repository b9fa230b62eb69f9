"""Which vendor batch client, if any, serves a configured provider (its `batch:` key turned on)."""

from __future__ import annotations

from providers.anthropic import AnthropicProvider
from providers.base import AIProvider
from providers.openai_compatible import OpenAICompatibleProvider
from providers.vendor_batch import VendorBatchClient
from providers.vendor_batch_anthropic import AnthropicBatchClient
from providers.vendor_batch_openai import OpenAIBatchClient


def vendor_batch_client(provider: AIProvider) -> VendorBatchClient | None:
    settings = getattr(provider.config, "batch", None)
    if settings is None or not settings.enabled:
        return None
    if isinstance(provider, AnthropicProvider):
        return AnthropicBatchClient(provider, settings)
    if isinstance(provider, OpenAICompatibleProvider):
        return OpenAIBatchClient(provider, settings)
    return None


__all__ = ["vendor_batch_client"]
