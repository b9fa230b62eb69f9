"""What one call must fit in the shared store: the checks of its provider, subscription, run, day and team.

Scopes name what a counter counts: `provider:<id>`, `subscription:<id>/<name>`, `budget:run:<run id>`,
`budget:day`, `budget:team:<team>`. Provider and subscription limits are sliding windows (non-critical tasks
may use `1 - reserve_for_critical` of each, as in this process's own quota); the day and team budgets are UTC
days and a run's budget lasts as long as the run, all on the store's clock.
"""

from __future__ import annotations

from ledger import FOREVER, UTC_DAY, LimitCheck, LimitRefusal, ReservationAsk, sliding
from providers import LIMIT_SPECS, AIProvider, Limits
from routing.budget import BudgetRefusal
from routing.config import SwitchboardConfig
from routing.provider_state import subscription_limits

# A reservation lives this long past its provider's timeout before it expires, charged at its estimate.
TTL_MARGIN_S = 120.0
DAY_SCOPE = "budget:day"


def provider_scope(provider_id: str) -> str:
    return f"provider:{provider_id}"


def subscription_scope(provider_id: str, subscription: str) -> str:
    return f"subscription:{provider_id}/{subscription}"


def _limit_checks(scope: str, limits: Limits, share: float) -> tuple[LimitCheck, ...]:
    return tuple(
        LimitCheck(scope, spec.name, spec.measure, sliding(spec.span_s), float(value) * share)  # type: ignore[arg-type]
        for spec in LIMIT_SPECS
        if (value := getattr(limits, spec.name)) is not None
    )


class SharedAsks:
    """Builds a call's `ReservationAsk`; the per-provider checks are computed once and kept."""

    def __init__(self, config: SwitchboardConfig) -> None:
        self._config = config
        self._share = 1.0 - config.reserve_for_critical
        self._provider_checks: dict[tuple[str, str | None, bool], tuple[LimitCheck, ...]] = {}
        budget = config.budget
        self._day = (
            (LimitCheck(DAY_SCOPE, "day", "cost", UTC_DAY, budget.max_cost_usd_per_day),)
            if budget.max_cost_usd_per_day is not None
            else ()
        )
        self._teams = {
            name: LimitCheck(f"budget:team:{name}", name, "cost", UTC_DAY, team.max_cost_usd_per_day)
            for name, team in config.teams.items()
            if team.max_cost_usd_per_day is not None
        }

    def provider_has_limits(self, provider: AIProvider) -> bool:
        return bool(_limit_checks("", provider.config.limits, 1.0)) or any(
            _limit_checks("", limits, 1.0) for limits in subscription_limits(provider).values()
        )

    def ask(
        self,
        provider: AIProvider,
        subscription: str | None,
        *,
        run_id: str,
        team: str | None,
        tokens: float,
        cost: float,
        critical: bool,
        list_cost: float | None = None,
    ) -> ReservationAsk | None:
        """What this call must fit, or None when nothing limits it (then the store is not asked at all)."""
        checks = self._provider(provider, subscription, critical) + self._budgets(run_id, team)
        if not checks:
            return None
        ttl = (provider.config.timeout_s or 120.0) + TTL_MARGIN_S
        return ReservationAsk(checks, requests=1, tokens=tokens, cost=cost, ttl_s=ttl, list_cost=list_cost)

    def budget_ask(self, *, run_id: str, team: str | None, cost: float, ttl_s: float) -> ReservationAsk | None:
        """What a request sent to a vendor batch must fit: the run, day and team budgets only. The vendor's batch
        capacity is not the live endpoint's, so the provider's and subscriptions' windows do not count it."""
        checks = self._budgets(run_id, team)
        if not checks:
            return None
        return ReservationAsk(checks, requests=1, tokens=0, cost=cost, ttl_s=ttl_s + TTL_MARGIN_S)

    def _budgets(self, run_id: str, team: str | None) -> tuple[LimitCheck, ...]:
        checks = self._day
        run_cap = self._config.budget.max_cost_usd_per_run
        if run_cap is not None:
            checks += (LimitCheck(f"budget:run:{run_id}", "run", "cost", FOREVER, run_cap),)
        team_check = self._teams.get(team) if team else None
        if team_check is not None:
            checks += (team_check,)
        return checks

    def _provider(self, provider: AIProvider, subscription: str | None, critical: bool) -> tuple[LimitCheck, ...]:
        key = (provider.provider_id, subscription, critical)
        checks = self._provider_checks.get(key)
        if checks is None:
            share = 1.0 if critical else self._share
            checks = _limit_checks(provider_scope(provider.provider_id), provider.config.limits, share)
            sub_limits = subscription_limits(provider).get(subscription) if subscription else None
            if sub_limits is not None:
                checks += _limit_checks(subscription_scope(provider.provider_id, subscription), sub_limits, share)
            self._provider_checks[key] = checks
        return checks

    def forget(self, provider_id: str) -> None:
        """A provider was updated: its limits may have changed."""
        for key in [k for k in self._provider_checks if k[0] == provider_id]:
            del self._provider_checks[key]


def shared_refusal(refusal: LimitRefusal) -> str | BudgetRefusal:
    """The reason routing records for a provider the shared store refused."""
    check = refusal.check
    if check.scope == DAY_SCOPE:
        return BudgetRefusal("day", refusal.total, check.limit)
    if check.scope.startswith("budget:run:"):
        return BudgetRefusal("run", refusal.total, check.limit)
    if check.scope.startswith("budget:team:"):
        return BudgetRefusal("team", refusal.total, check.limit, team=check.name)
    used = refusal.settled + refusal.reserved
    return f"quota: {check.name} {used:g}/{check.limit:g} across processes"


def refused_subscription(refusal: LimitRefusal, provider_id: str) -> str | None:
    """The subscription whose own limit refused, or None when it was something else."""
    prefix = f"subscription:{provider_id}/"
    return refusal.check.scope[len(prefix) :] if refusal.check.scope.startswith(prefix) else None


__all__ = ["SharedAsks", "provider_scope", "refused_subscription", "shared_refusal", "subscription_scope"]
