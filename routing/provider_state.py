"""The engine's view of one provider: its live state and the facts every decision needs, precomputed."""

from __future__ import annotations

from providers import AIProvider, Limits
from routing.circuit import CircuitBreaker
from routing.gate import PriorityGate
from routing.health import HealthView
from routing.quota import ProviderQuota


def subscription_limits(provider: AIProvider) -> dict[str, Limits]:
    """The configured subscriptions' limits of a provider that has subscriptions (claude_cli), by name."""
    subscriptions = getattr(provider.config, "subscriptions", None) or []
    return {s.name: s.limits for s in subscriptions}


class ProviderState:
    """Breaker, quota, health and concurrency slots of one provider; survives updates of its config."""

    __slots__ = (
        "available",
        "breaker",
        "capability_match",
        "gate",
        "health",
        "index",
        "prices",
        "priority",
        "provider",
        "quota",
        "removed",
        "task_types",
    )

    def __init__(
        self, provider: AIProvider, index: int, breaker: CircuitBreaker, quota: ProviderQuota, health: HealthView
    ) -> None:
        self.index = index
        self.breaker = breaker
        self.quota = quota
        self.health = health
        self.gate = PriorityGate(1)
        self.removed = False
        self.adopt(provider)

    def adopt(self, provider: AIProvider) -> None:
        """Read the per-decision facts from `provider`: on first use, and when an update swapped the instance."""
        self.provider = provider
        capabilities = provider.capabilities()
        self.available = capabilities.available
        self.task_types = capabilities.task_types
        self.capability_match = 0.5 if capabilities.task_types is None else 1.0
        self.priority = provider.config.priority
        grown = capabilities.max_concurrency - self.gate.limit
        self.gate.limit = capabilities.max_concurrency
        if grown > 0:
            self.gate.wake(grown)
        # Providers that keep the base estimator are priced here without building a CostEstimate per decision.
        if type(provider).estimate_cost is AIProvider.estimate_cost and not provider.config.models:
            price = provider.price_for(provider.config.model or "")
            self.prices: tuple[float, float] | None = (price.input, price.output)
        else:
            self.prices = None

    def reset(self, subscription: str | None = None) -> None:
        """Reset by hand: the quota's blocks, cool-offs and windows cleared (one subscription's, or all) and, for
        the whole provider, the circuit closed; tasks waiting for it look again. On the engine loop."""
        self.quota.reset(subscription)
        if subscription is None:
            self.breaker.reset()
        self.gate.wake_all()

    def same_limits(self, provider: AIProvider) -> bool:
        """Whether `provider` has the limits this state's quota counts against (an update kept them)."""
        old = self.provider
        return old.config.limits == provider.config.limits and subscription_limits(old) == subscription_limits(provider)
