"""The provider contract (models, errors, `AIProvider`) and one module per provider type.

The contract is imported eagerly. The provider types and their configs load on first use (PEP 562), so
`import providers` stays cheap (no httpx, no subprocess machinery) and the provider modules, which import
the contract from here, cannot form a cycle with this file.
"""

import importlib
from typing import TYPE_CHECKING, Any

from providers.base import (
    CHARS_PER_TOKEN,
    AIProvider,
    Limits,
    ModelTier,
    ProviderConfig,
    SecretResolver,
    env_secrets,
    estimate_prompt_tokens,
    secret_block_name,
    utc_now,
)
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
    CREDENTIALS_CHANGED,
    TASK_TYPES,
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
from providers.processes import group_members, pid_alive, reap, signal_group, stop_group, terminate_group
from providers.prompt import render_prompt
from providers.redaction import MIN_SECRET_LEN, redact, safe_url
from providers.text import name_problem, restored, restored_or_none, storable, well_formed

if TYPE_CHECKING:
    from providers._http import HttpProviderConfig
    from providers.anthropic import AnthropicConfig, AnthropicProvider
    from providers.claude_cli import (
        CREDENTIAL_VARS,
        ClaudeCliConfig,
        ClaudeCliProvider,
        SubscriptionCheck,
        SubscriptionConfig,
        SubscriptionStatus,
    )
    from providers.local_mock import LocalMockConfig, LocalMockProvider
    from providers.openai_compatible import OpenAICompatibleConfig, OpenAICompatibleProvider
    from providers.status_map import error_class_for_status
    from providers.usage_window import LIMIT_SPECS, LimitSpec, LimitTracker, SlidingWindow, seconds_to_reach
    from providers.vendor_batch import (
        BatchResult,
        Unanswered,
        VendorBatch,
        VendorBatchClient,
        VendorBatchSettings,
        VendorBatchStatus,
    )
    from providers.vendor_batch_clients import vendor_batch_client

# Public name -> the module that defines it, imported when the name is first asked for.
_LAZY: dict[str, str] = {
    "AnthropicConfig": "providers.anthropic",
    "AnthropicProvider": "providers.anthropic",
    "ClaudeCliConfig": "providers.claude_cli",
    "ClaudeCliProvider": "providers.claude_cli",
    "CREDENTIAL_VARS": "providers.claude_cli",
    "HttpProviderConfig": "providers._http",
    "LIMIT_SPECS": "providers.usage_window",
    "LimitSpec": "providers.usage_window",
    "LimitTracker": "providers.usage_window",
    "LocalMockConfig": "providers.local_mock",
    "LocalMockProvider": "providers.local_mock",
    "OpenAICompatibleConfig": "providers.openai_compatible",
    "OpenAICompatibleProvider": "providers.openai_compatible",
    "SlidingWindow": "providers.usage_window",
    "SubscriptionCheck": "providers.claude_cli",
    "seconds_to_reach": "providers.usage_window",
    "SubscriptionConfig": "providers.claude_cli",
    "SubscriptionStatus": "providers.claude_cli",
    "error_class_for_status": "providers.status_map",
    "BatchResult": "providers.vendor_batch",
    "Unanswered": "providers.vendor_batch",
    "VendorBatch": "providers.vendor_batch",
    "VendorBatchClient": "providers.vendor_batch",
    "VendorBatchSettings": "providers.vendor_batch",
    "VendorBatchStatus": "providers.vendor_batch",
    "vendor_batch_client": "providers.vendor_batch_clients",
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
    "CHARS_PER_TOKEN",
    "CREDENTIALS_CHANGED",
    "CREDENTIAL_VARS",
    "ERRORS_BY_OUTCOME",
    "LIMIT_SPECS",
    "MIN_SECRET_LEN",
    "NOT_ABOUT_THE_PROVIDER",
    "OUTCOMES",
    "TASK_TYPES",
    "AIProvider",
    "AITask",
    "AnthropicConfig",
    "AnthropicProvider",
    "AuthenticationFailed",
    "BadRequest",
    "BatchResult",
    "BudgetExceeded",
    "Cancelled",
    "ClaudeCliConfig",
    "ClaudeCliProvider",
    "CostEstimate",
    "ExecutionContext",
    "HealthStatus",
    "HttpProviderConfig",
    "LimitSpec",
    "LimitTracker",
    "Limits",
    "LocalMockConfig",
    "LocalMockProvider",
    "MalformedResponse",
    "ModelTier",
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
    "Unanswered",
    "Unavailable",
    "VendorBatch",
    "VendorBatchClient",
    "VendorBatchSettings",
    "VendorBatchStatus",
    "env_secrets",
    "error_class_for_status",
    "estimate_prompt_tokens",
    "group_members",
    "name_problem",
    "pid_alive",
    "reap",
    "redact",
    "render_prompt",
    "restored",
    "restored_or_none",
    "safe_url",
    "seconds_to_reach",
    "secret_block_name",
    "signal_group",
    "stop_group",
    "storable",
    "terminate_group",
    "utc_now",
    "vendor_batch_client",
    "well_formed",
]
