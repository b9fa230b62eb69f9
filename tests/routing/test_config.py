"""Providers config: built-in defaults, YAML/JSON files, and errors naming file, provider and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers import LocalMockConfig
from routing.config import BUILTIN_SOURCE, load_config
from routing.errors import ConfigError


def test_no_file_gives_two_builtin_mocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_PROVIDERS", raising=False)
    config = load_config()
    assert config.source == BUILTIN_SOURCE
    assert [p.type for p in config.providers.values()] == ["local_mock", "local_mock"]


def test_file_from_env_var_is_typed_per_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\nstrategy: cost_based\nbudget: {max_cost_usd_per_run: 2}\nproviders:\n"
        "  m: {type: local_mock, priority: 3, failure_rate: 0.5, capabilities: [code_review]}\n"
    )
    monkeypatch.setenv("SWITCHBOARD_PROVIDERS", str(path))
    config = load_config()
    provider = config.providers["m"]
    assert isinstance(provider, LocalMockConfig)
    assert provider.failure_rate == 0.5 and provider.capabilities == ["code_review"]
    assert config.strategy == "cost_based" and config.budget.max_cost_usd_per_run == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("providers:\n  m: {type: local_mock, failure_rate: 2}\n", "providers.m.failure_rate"),
        ("providers:\n  m: {type: local_mock, fail_with: exploded}\n", "providers.m.fail_with"),
        ("providers:\n  m: {type: local_mock, colour: red}\n", "providers.m.colour"),
        ("providers:\n  m: {type: carrier_pigeon}\n", "providers.m.type: unknown provider type 'carrier_pigeon'"),
        ("providers:\n  m: {priority: 1}\n", "providers.m.type: missing"),
        ("strategy: fastest\nproviders:\n  m: {type: local_mock}\n", "strategy"),
        ("providers: {}\n", "providers"),
        (
            "providers:\n  a: {type: local_mock, enabled: false}\n  b: {type: local_mock, enabled: false}\n",
            "providers: every provider is disabled (enabled: false); enable at least one",
        ),
        (
            "providers:\n  o: {type: openai_compatible, base_url: not a url}\n",
            "providers.o.base_url: Value error, not an",
        ),
        ("providers:\n  o: {type: openai_compatible, base_url: 'ftp://h/v1'}\n", "providers.o.base_url"),
        (
            "providers:\n  o: {type: anthropic, base_url: 'http://h:port/'}\n",
            "providers.o.base_url: Value error, not a URL",
        ),
        (
            '{"providers": {"m\\u001b]0;x": {"type": "local_mock"}}}',
            "providers.'m\\x1b]0;x': the provider's name must not",
        ),
    ],
)
def test_invalid_config_names_file_provider_and_field(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "providers.json"
    path.write_text(
        '{"providers": {"a": {"type": "local_mock", "latency_ms": -1}, "b": {"type": "local_mock", "seed": "x"}}}'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "providers.a.latency_ms" in str(info.value) and "providers.b.seed" in str(info.value)
