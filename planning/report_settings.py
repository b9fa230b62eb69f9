"""A providers file as the report's inputs: limits, prices and alert thresholds, as analytics' plain values.

The one place a providers config (routing's) becomes what analytics takes, for `switchboard report` and the
scheduled `usage_report` flow alike.
"""

from __future__ import annotations

from analytics import AlertThresholds, QuotaLimit, ReportSettings
from providers import LIMIT_SPECS, Price
from routing import SwitchboardConfig, provider_class


def report_settings(config: SwitchboardConfig) -> ReportSettings:
    """Limits, prices and alert thresholds from the providers file, as analytics' plain values."""
    limits: list[QuotaLimit] = []
    prices: dict[str, Price] = {}
    for provider_id, provider in config.providers.items():
        owners = [(None, provider.limits)]
        owners += [(s.name, s.limits) for s in getattr(provider, "subscriptions", None) or []]
        for subscription, owned in owners:
            for spec in LIMIT_SPECS:
                value = getattr(owned, spec.name)
                if value is not None:
                    limits.append(QuotaLimit(provider_id, subscription, spec.name, spec.measure, spec.span_s, value))
        # The lookup the provider bills with: config, shipped table, the model's family, the type's fallback.
        match = provider_class(provider.type).price_match(provider, provider.model or "")
        if match.source != "unpriced":
            prices[provider_id] = match.price
    alerts = config.alerts
    return ReportSettings(
        limits=tuple(limits),
        prices=prices,
        thresholds=AlertThresholds(alerts.daily_cost_usd, alerts.error_rate, alerts.quota_forecast_hours),
        circuit_cooldown_s=config.circuit.cooldown_s,
    )


__all__ = ["report_settings"]
