"""Provider types come from the `switchboard.providers` entry points; the live set changes without a restart."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from providers import AITask, Limits, LocalMockConfig, LocalMockProvider, Priority
from routing import registry as registry_module
from routing.config import parse_config
from routing.registry import ProviderRegistry, ProviderUpdateError, provider_type_names
from routing.router import Router
from tests.routing.engine_kit import calls, tasks

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_block(first_line: str) -> str:
    """The README's code block that starts with `first_line`: the plugin a user would copy."""
    text = README.read_text()
    start = text.index(first_line)
    return text[start : text.index("```", start)]


PLUGIN = _readme_block("# echo_provider.py")
ENTRY_POINT = _readme_block("# the plugin's pyproject.toml")


@pytest.fixture
def echo_plugin(tmp_path: Path) -> Iterator[None]:
    """Install a plugin distribution the way pip would: a module plus a dist-info with an entry point."""
    (tmp_path / "echo_provider.py").write_text(PLUGIN)
    dist = tmp_path / "echo_provider-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-provider\nVersion: 0.1\n")
    # pip writes the pyproject's [project.entry-points."switchboard.providers"] table as this file.
    table = tomllib.loads(ENTRY_POINT)["project"]["entry-points"]["switchboard.providers"]
    lines = "".join(f"{name} = {target}\n" for name, target in table.items())
    (dist / "entry_points.txt").write_text(f"[switchboard.providers]\n{lines}")
    sys.path.insert(0, str(tmp_path))
    registry_module._entry_points.cache_clear()
    registry_module.provider_class.cache_clear()
    yield
    sys.path.remove(str(tmp_path))
    sys.modules.pop("echo_provider", None)
    registry_module._entry_points.cache_clear()
    registry_module.provider_class.cache_clear()


def test_builtin_types_are_entry_points() -> None:
    assert {"local_mock", "claude_cli", "anthropic", "openai_compatible"} <= set(provider_type_names())


async def test_a_third_party_provider_type_is_found_and_routed(echo_plugin: None) -> None:
    assert "echo" in provider_type_names()
    config = parse_config({"providers": {"mine": {"type": "echo", "prefix": ">> "}}}, "providers.yaml")
    router = Router(ProviderRegistry.from_configs(config.providers), config)
    result = await router.route(AITask(id="t", type="code_review", prompt="hello"))
    assert result.status == "completed" and result.response is not None
    assert result.response.text == ">> hello"


async def test_providers_are_added_updated_and_removed_while_running() -> None:
    registry = ProviderRegistry.from_configs({"a": LocalMockConfig(latency_ms=0, priority=2)})
    router = Router(registry)
    task = AITask(id="t", type="code_review", prompt="p")
    assert (await router.route(task)).provider_id == "a"

    registry.add("b", LocalMockConfig(latency_ms=0, priority=1))
    router.sync_providers()
    assert (await router.route(task)).provider_id == "b"

    await registry.update("b", LocalMockConfig(latency_ms=0, priority=1, capabilities=["bug_fix"]))
    router.sync_providers()
    result = await router.route(task)
    assert result.provider_id == "a" and result.decision.skipped == {"b": "capability"}

    await registry.remove("b")
    router.sync_providers()
    assert (await router.route(task)).decision.candidates == ("a",)
    await registry.aclose()


def _limited(limit: int, **values: object) -> LocalMockConfig:
    return LocalMockConfig(latency_ms=0, priority=1, limits=Limits(requests_per_hour=limit), **values)  # type: ignore[arg-type]


async def test_an_update_keeps_the_providers_quota_windows() -> None:
    registry = ProviderRegistry.from_configs({"lim": _limited(5), "spare": LocalMockConfig(latency_ms=0, priority=2)})
    router = Router(registry, health_checks=False)
    first = [await router.route(t) for t in tasks(10, priority=Priority.CRITICAL)]
    assert calls(first, "lim") == 5

    await registry.update("lim", _limited(5, max_concurrency=8))  # same limits, another setting
    router.sync_providers()
    assert router.state("lim").gate.limit == 8
    second = [await router.route(t) for t in tasks(10, prefix="second", priority=Priority.CRITICAL)]
    assert calls(second, "lim") == 0  # still 5 of 5 in this hour

    await registry.update("lim", _limited(7))  # a raised limit: what was used still counts against it
    router.sync_providers()
    third = [await router.route(t) for t in tasks(10, prefix="third", priority=Priority.CRITICAL)]
    assert calls(third, "lim") == 2
    await registry.aclose()


async def test_an_update_keeps_an_open_circuit_open() -> None:
    registry = ProviderRegistry.from_configs(
        {"dead": LocalMockConfig(latency_ms=0, priority=1, failure_rate=1.0), "ok": LocalMockConfig(latency_ms=0)}
    )
    router = Router(registry, health_checks=False)
    for t in tasks(5):
        await router.route(t)
    assert router.state("dead").breaker.state == "open"
    await registry.update("dead", LocalMockConfig(latency_ms=0, priority=1, failure_rate=1.0, timeout_s=5))
    router.sync_providers()
    result = await router.route(tasks(1, prefix="after")[0])
    assert result.provider_id == "ok" and result.decision.skipped["dead"] == "circuit_open"
    await registry.aclose()


class ClosingMock(LocalMockProvider):
    closed = False

    async def aclose(self) -> None:
        self.closed = True


async def test_a_failed_update_leaves_the_old_provider_in_place_and_says_why() -> None:
    registry = ProviderRegistry()
    old = ClosingMock("spare", LocalMockConfig(latency_ms=0))
    registry.add_instance(old)
    router = Router(registry, health_checks=False)
    with pytest.raises(ProviderUpdateError, match=r"unknown provider type 'nope'.*the old one stays in place"):
        await registry.update("spare", LocalMockConfig.model_construct(type="nope", priority=2))
    assert registry.get("spare") is old and not old.closed
    router.sync_providers()
    assert (await router.route(tasks(1)[0])).provider_id == "spare"
