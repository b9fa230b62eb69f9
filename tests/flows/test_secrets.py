"""Secrets: the env-then-Secret-block resolver, and no key value leaking anywhere a run writes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.secrets import block_name, secret_resolver

ROOT = Path(__file__).resolve().parents[2]
ENV_NAME = "SWITCHBOARD_TEST_RESOLVER_KEY"
BLOCK = "switchboard-test-resolver-key"


@pytest.fixture
def saved_block(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from prefect.blocks.system import Secret

    monkeypatch.delenv(ENV_NAME, raising=False)
    Secret(value="value-from-block").save(BLOCK, overwrite=True)
    yield BLOCK
    Secret.delete(BLOCK)


def test_block_names_are_lowercase_with_dashes() -> None:
    assert block_name("ANTHROPIC_API_KEY") == "anthropic-api-key"
    assert block_name("openai-key") == "openai-key"


def test_the_env_var_wins_over_the_block(saved_block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_NAME, "value-from-env")
    assert secret_resolver()(ENV_NAME) == "value-from-env"


def test_the_block_is_used_when_the_env_var_is_unset(saved_block: str) -> None:
    resolve = secret_resolver()
    assert resolve(ENV_NAME) == "value-from-block"
    assert resolve(BLOCK) == "value-from-block"  # a block name given as is works too


def test_an_empty_env_var_counts_as_unset(saved_block: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_NAME, "")
    assert secret_resolver()(ENV_NAME) == "value-from-block"


def test_neither_env_nor_block_gives_none(prefect_harness: None) -> None:
    assert secret_resolver()("SWITCHBOARD_TEST_NO_SUCH_KEY") is None


def test_blocks_can_be_turned_off(saved_block: str) -> None:
    assert secret_resolver(use_blocks=False)(ENV_NAME) is None


def test_values_are_cached_for_the_resolvers_life(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.blocks.system import Secret

    monkeypatch.delenv(ENV_NAME, raising=False)
    Secret(value="first").save(BLOCK, overwrite=True)
    resolve = secret_resolver()
    assert resolve(ENV_NAME) == "first"
    Secret(value="second").save(BLOCK, overwrite=True)
    assert resolve(ENV_NAME) == "first"  # providers ask on every request; one API call is enough
    assert secret_resolver()(ENV_NAME) == "second"
    Secret.delete(BLOCK)


def test_a_json_secret_is_not_a_key(prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.blocks.system import Secret

    monkeypatch.delenv(ENV_NAME, raising=False)
    Secret(value={"not": "a string"}).save(BLOCK, overwrite=True)
    assert secret_resolver()(ENV_NAME) is None
    Secret.delete(BLOCK)


async def test_works_from_inside_a_running_event_loop(saved_block: str) -> None:
    # Providers ask for keys from their async code; Prefect's sync/async dispatch must not hand back a coroutine.
    resolve = secret_resolver()
    assert await asyncio.to_thread(resolve, ENV_NAME) == "value-from-block"
    assert resolve(ENV_NAME) == "value-from-block"


def test_a_resolver_made_inside_a_flow_run_reads_blocks_from_other_threads(saved_block: str) -> None:
    from prefect import flow

    @flow
    def make_resolver() -> object:
        return secret_resolver()

    resolve = make_resolver()
    result: list[str | None] = []
    worker = threading.Thread(target=lambda: result.append(resolve(ENV_NAME)))  # type: ignore[operator]
    worker.start()
    worker.join(30)
    assert result == ["value-from-block"]


def _resolve_in_subprocess(tmp_path: Path, extra_env: dict[str, str], timeout_s: float = 1.0) -> tuple[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), **extra_env)
    code = (
        "import time\n"
        "from flows.secrets import secret_resolver\n"
        f"resolve = secret_resolver(timeout_s={timeout_s})\n"
        "t = time.monotonic()\n"
        "first = resolve('SWITCHBOARD_TEST_NO_SUCH_KEY')\n"
        "second = resolve('SWITCHBOARD_TEST_OTHER_KEY')\n"
        "print(first, second, round(time.monotonic() - t, 2))\n"
    )
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=True
    )
    return out.stdout.strip(), time.monotonic() - started


def test_without_a_prefect_api_no_block_lookup_is_tried(tmp_path: Path) -> None:
    stdout, _ = _resolve_in_subprocess(tmp_path, {})
    first, second, lookup_s = stdout.split()
    assert (first, second) == ("None", "None")
    # No temporary Prefect server was started: it would have created its database here and taken ~10 s.
    assert not (tmp_path / "prefect-home" / "prefect.db").exists()
    assert float(lookup_s) < 5


def test_an_unreachable_prefect_api_costs_one_short_timeout(tmp_path: Path) -> None:
    from tests.fakes.fake_llm_servers import closed_port_url

    stdout, _ = _resolve_in_subprocess(tmp_path, {"PREFECT_API_URL": closed_port_url() + "/api"}, timeout_s=1.0)
    first, second, lookup_s = stdout.split()
    assert (first, second) == ("None", "None")
    # At most one timeout in total: after it, blocks are not tried again.
    assert float(lookup_s) < 2.5
