"""The routing step, independent of Prefect: the providers file (config), the provider registry, strategies,
health and circuit breakers, quota and subscription state, budgets, the router that plans, admits, calls,
fails over and records every attempt, and its memory across processes (restore).

Imports `providers` and `ledger` only. The engine's async work runs on one long-lived loop (`engine_loop`).
"""

from routing.budget import BudgetRefusal
from routing.cache import CacheLookup, ResponseCache, cache_key, ledger_lookup
from routing.config import (
    BUILTIN_SOURCE,
    PROVIDER_ID_PATTERN,
    PROVIDERS_ENV,
    RESERVED_PROVIDER_IDS,
    STRATEGY_NAMES,
    AlertSettings,
    ApiSettings,
    ApiToken,
    Budget,
    CacheSettings,
    RunnerSettings,
    StrategyName,
    SwitchboardConfig,
    TeamSettings,
    check_strategy,
    load_config,
    parse_config,
    parse_provider,
)
from routing.deferral import BatchTerms, Deferral
from routing.documents import load_document
from routing.errors import ConfigError, InputError, describe_validation_error
from routing.events import (
    BUDGET_EXHAUSTED,
    CIRCUIT_CLOSED,
    CIRCUIT_HALF_OPEN,
    CIRCUIT_OPENED,
    FAILOVER,
    QUOTA_BLOCKED,
    QUOTA_FORECAST_CROSSED,
    QUOTA_RESET,
    BudgetExhaustedDetail,
    QuotaBlockedDetail,
    RoutingEvent,
    RoutingObserver,
    plain_detail,
)
from routing.failover import FailoverPolicy
from routing.loop import EngineLoop, engine_loop
from routing.overlay import adopt_providers, apply_overlay, provider_source
from routing.quota import ProviderQuota
from routing.registry import (
    ENTRY_POINT_GROUP,
    ProviderRegistry,
    ProviderUpdateError,
    provider_class,
    provider_type_names,
)
from routing.reset import describe_trouble, reset_everywhere, reset_here
from routing.restore import CIRCUIT_MEMORY, HISTORY_DAYS, ledger_observer, record_event, restore_router_state
from routing.router import RoutedResult, Router, RunInfo
from routing.shared import SharedLimits, StoreUnavailable, Ticket
from routing.strategies import STRATEGIES, Candidate, Strategy, make_strategy
from routing.views import (
    CircuitView,
    HealthStateView,
    LimitView,
    ProviderLiveView,
    QuotaScopeView,
    provider_view,
    provider_views,
)

__all__ = [
    "BUDGET_EXHAUSTED",
    "BUILTIN_SOURCE",
    "CIRCUIT_CLOSED",
    "CIRCUIT_HALF_OPEN",
    "CIRCUIT_MEMORY",
    "CIRCUIT_OPENED",
    "ENTRY_POINT_GROUP",
    "FAILOVER",
    "HISTORY_DAYS",
    "PROVIDERS_ENV",
    "PROVIDER_ID_PATTERN",
    "QUOTA_BLOCKED",
    "QUOTA_FORECAST_CROSSED",
    "QUOTA_RESET",
    "RESERVED_PROVIDER_IDS",
    "STRATEGIES",
    "STRATEGY_NAMES",
    "AlertSettings",
    "ApiSettings",
    "ApiToken",
    "BatchTerms",
    "Budget",
    "BudgetExhaustedDetail",
    "BudgetRefusal",
    "CacheLookup",
    "CacheSettings",
    "Candidate",
    "CircuitView",
    "ConfigError",
    "Deferral",
    "EngineLoop",
    "FailoverPolicy",
    "HealthStateView",
    "InputError",
    "LimitView",
    "ProviderLiveView",
    "ProviderQuota",
    "ProviderRegistry",
    "ProviderUpdateError",
    "QuotaBlockedDetail",
    "QuotaScopeView",
    "ResponseCache",
    "RoutedResult",
    "Router",
    "RoutingEvent",
    "RoutingObserver",
    "RunInfo",
    "RunnerSettings",
    "SharedLimits",
    "StoreUnavailable",
    "Strategy",
    "StrategyName",
    "SwitchboardConfig",
    "TeamSettings",
    "Ticket",
    "adopt_providers",
    "apply_overlay",
    "cache_key",
    "check_strategy",
    "describe_trouble",
    "describe_validation_error",
    "engine_loop",
    "ledger_lookup",
    "ledger_observer",
    "load_config",
    "load_document",
    "make_strategy",
    "parse_config",
    "parse_provider",
    "plain_detail",
    "provider_class",
    "provider_source",
    "provider_type_names",
    "provider_view",
    "provider_views",
    "record_event",
    "reset_everywhere",
    "reset_here",
    "restore_router_state",
]
