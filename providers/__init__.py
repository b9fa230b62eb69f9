"""The provider contract (models, errors, `AIProvider`) and one module per provider type.

The contract is imported eagerly. The provider types and their configs load on first use (PEP 562), so
`import providers` stays cheap (no httpx, no subprocess machinery) and the provider modules, which import
the contract from here, cannot form a cycle with this file.
"""

import importlib
from typing import TYPE_CHECKING, Any

from providers.base import AIProvider, Limits, ProviderConfig, SecretResolver, env_secrets
from providers.errors import (
    ERRORS_BY_OUTCOME,
    NOT_ABOUT_THE_PROVIDER,
    OUTCOMES,
    AuthenticationFailed,
    BadRequest,
    BudgetExceeded,
    Cancelled,
    MalformedResponse,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
    Unavailable,
)
from providers.models import (
    AITask,
    CostEstimate,
    ExecutionContext,
    HealthStatus,
    Price,
    Priority,
    ProviderCapabilities,
    ProviderHealth,
    ProviderResponse,
    QuotaSignal,
    TokenUsage,
)

if TYPE_CHECKING:
    from providers._http import HttpProviderConfig
    from providers.anthropic import AnthropicConfig, AnthropicProvider
    from providers.claude_cli import (
        ClaudeCliConfig,
        ClaudeCliProvider,
        SubscriptionCheck,
        SubscriptionConfig,
        SubscriptionStatus,
    )
    from providers.local_mock import LocalMockConfig, LocalMockProvider
    from providers.openai_compatible import OpenAICompatibleConfig, OpenAICompatibleProvider
    from providers.status_map import error_class_for_status
    from providers.usage_window import LimitTracker, SlidingWindow

# Public name -> the module that defines it, imported when the name is first asked for.
_LAZY: dict[str, str] = {
    "AnthropicConfig": "providers.anthropic",
    "AnthropicProvider": "providers.anthropic",
    "ClaudeCliConfig": "providers.claude_cli",
    "ClaudeCliProvider": "providers.claude_cli",
    "HttpProviderConfig": "providers._http",
    "LimitTracker": "providers.usage_window",
    "LocalMockConfig": "providers.local_mock",
    "LocalMockProvider": "providers.local_mock",
    "OpenAICompatibleConfig": "providers.openai_compatible",
    "OpenAICompatibleProvider": "providers.openai_compatible",
    "SlidingWindow": "providers.usage_window",
    "SubscriptionCheck": "providers.claude_cli",
    "SubscriptionConfig": "providers.claude_cli",
    "SubscriptionStatus": "providers.claude_cli",
    "error_class_for_status": "providers.status_map",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ERRORS_BY_OUTCOME",
    "NOT_ABOUT_THE_PROVIDER",
    "OUTCOMES",
    "AIProvider",
    "AITask",
    "AnthropicConfig",
    "AnthropicProvider",
    "AuthenticationFailed",
    "BadRequest",
    "BudgetExceeded",
    "Cancelled",
    "ClaudeCliConfig",
    "ClaudeCliProvider",
    "CostEstimate",
    "ExecutionContext",
    "HealthStatus",
    "HttpProviderConfig",
    "LimitTracker",
    "Limits",
    "LocalMockConfig",
    "LocalMockProvider",
    "MalformedResponse",
    "OpenAICompatibleConfig",
    "OpenAICompatibleProvider",
    "Overloaded",
    "Price",
    "Priority",
    "ProviderCapabilities",
    "ProviderConfig",
    "ProviderError",
    "ProviderHealth",
    "ProviderResponse",
    "ProviderTimeout",
    "QuotaExhausted",
    "QuotaSignal",
    "RateLimited",
    "SecretResolver",
    "SlidingWindow",
    "SubscriptionCheck",
    "SubscriptionConfig",
    "SubscriptionStatus",
    "TokenUsage",
    "Unavailable",
    "env_secrets",
    "error_class_for_status",
]
