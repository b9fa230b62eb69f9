"""A providers file as the report's inputs: limits (provider and subscription), prices as the providers bill,
alert thresholds."""

from __future__ import annotations

from analytics import QuotaLimit
from planning import report_settings
from providers import Price
from routing import parse_config


def test_report_settings_from_a_providers_file() -> None:
    config = parse_config(
        {
            "version": 1,
            "alerts": {"daily_cost_usd": 50, "error_rate": 0.05, "quota_forecast_hours": 6},
            "providers": {
                "claude": {
                    "type": "claude_cli",
                    "subscriptions": [
                        {"name": "team-a", "config_dir": "/tmp/a", "limits": {"requests_per_hour": 1000}},
                        {"name": "team-b", "api_key_env": "KEY_B"},
                    ],
                },
                "api": {"type": "anthropic", "model": "claude-haiku-4-5", "limits": {"tokens_per_day": 5_000_000}},
                # In no price table: priced by its family, as the provider bills it, not at $0.
                "opus": {"type": "anthropic", "model": "claude-opus-4-0"},
                "mock": {"type": "local_mock", "prices": {"*": {"input": 0.25, "output": 0.75}}},
            },
        },
        "test",
    )
    settings = report_settings(config)
    assert set(settings.limits) == {
        QuotaLimit("claude", "team-a", "requests_per_hour", "requests", 3600, 1000),
        QuotaLimit("api", None, "tokens_per_day", "tokens", 86400, 5_000_000),
    }
    assert settings.prices["mock"] == Price(input=0.25, output=0.75)  # the file's price
    assert settings.prices["api"].input == 1.0 and settings.prices["api"].output == 5.0  # the type's, for its model
    assert settings.prices["claude"].input > 0  # claude_cli's built-in "*" price
    assert settings.prices["opus"] == Price(input=15.0, output=75.0, cache_read=1.5, cache_write=18.75)
    thresholds = settings.thresholds
    assert (thresholds.daily_cost_usd, thresholds.error_rate, thresholds.quota_forecast_hours) == (50, 0.05, 6)
