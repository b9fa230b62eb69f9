"""Changing providers through the API (an overlay marked `api`, never overwritten by the providers file), resetting
a provider by hand, preferring a provider for a task not run yet; every change recorded with who and when."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from batches import TaskEngine, close_runtime, open_runtime, parse_spec, run_nodes, start_run
from ledger import RESET_EVENT, Ledger, admin_changes
from providers import AITask
from routing import parse_config
from tests.api.api_kit import ADMIN_TOKEN, READ_TOKEN, auth
from tests.cli.cli_kit import cli_env, switchboard

NEW = {"id": "added", "settings": {"type": "local_mock", "priority": 0, "latency_ms": 0, "model": "mock-new"}}


async def test_a_provider_added_through_the_api_is_listed_as_from_the_api_and_routed_to(
    client: httpx.AsyncClient, ledger: Ledger
) -> None:
    r = await client.post("/api/v1/providers", json=NEW, headers=auth(ADMIN_TOKEN))
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "api" and r.json()["model"] == "mock-new"
    listed = (await client.get("/api/v1/providers", headers=auth(READ_TOKEN))).json()["providers"]
    assert {p["id"]: p["source"] for p in listed} == {
        "fast": "file",
        "backup": "file",
        "remote": "file",
        "added": "api",
    }
    task = await client.post("/api/v1/tasks", json={"type": "code_review", "prompt": "p"}, headers=auth(ADMIN_TOKEN))
    assert task.json()["provider"] == "added"  # priority 0: first from the next decision on
    change = admin_changes(ledger)[0]
    assert (change.who, change.action, change.target) == ("ops", "provider.create", "provider:added")


async def test_changes_are_checked_like_a_providers_file(client: httpx.AsyncClient) -> None:
    cases = [
        ({"id": "usage", "settings": {"type": "local_mock"}}, 422, "reserved"),
        ({"id": "x", "settings": {"type": "nope"}}, 422, "unknown provider type"),
        ({"id": "x", "settings": {"type": "local_mock", "latency_ms": -1}}, 422, "latency_ms"),
        ({"id": "fast", "settings": {"type": "local_mock"}}, 409, "exists"),
        (
            {
                "id": "x",
                "settings": {"type": "openai_compatible", "model": "m", "base_url": "http://u:secret-pw@127.0.0.1/v1"},
            },
            422,
            "api_key_env",
        ),
    ]
    for body, status, words in cases:
        r = await client.post("/api/v1/providers", json=body, headers=auth(ADMIN_TOKEN))
        assert r.status_code == status, (body, r.text)
        assert words in str(r.json()["detail"]), r.text
    listed = (await client.get("/api/v1/providers", headers=auth(READ_TOKEN))).json()["providers"]
    assert [p["id"] for p in listed] == ["fast", "backup", "remote"]


async def test_put_overrides_the_files_provider_and_a_new_server_keeps_it(
    client: httpx.AsyncClient, make_client: Callable[[dict[str, Any]], httpx.AsyncClient], providers_doc: dict
) -> None:
    r = await client.put(
        "/api/v1/providers/fast", json={"type": "local_mock", "priority": 7, "latency_ms": 0}, headers=auth(ADMIN_TOKEN)
    )
    assert r.status_code == 200 and r.json()["source"] == "api" and r.json()["priority"] == 7
    # A server started later over the same providers file and ledger: the API's settings win, not the file's.
    async with make_client(providers_doc) as again:
        fast = (await again.get("/api/v1/providers/fast", headers=auth(READ_TOKEN))).json()
        assert fast["source"] == "api" and fast["priority"] == 7
        task = await again.post("/api/v1/tasks", json={"type": "code_review", "prompt": "p"}, headers=auth(ADMIN_TOKEN))
        assert task.json()["provider"] == "backup"  # priority 2 now comes before fast's 7


async def test_delete_removes_a_provider_from_routing(client: httpx.AsyncClient) -> None:
    assert (await client.delete("/api/v1/providers/fast", headers=auth(ADMIN_TOKEN))).status_code == 204
    assert (await client.get("/api/v1/providers/fast", headers=auth(READ_TOKEN))).status_code == 404
    task = await client.post("/api/v1/tasks", json={"type": "code_review", "prompt": "p"}, headers=auth(ADMIN_TOKEN))
    assert task.json()["provider"] == "backup"
    assert (await client.delete("/api/v1/providers/fast", headers=auth(ADMIN_TOKEN))).status_code == 404


async def test_a_provider_added_through_the_api_is_used_by_a_router_running_elsewhere(
    client: httpx.AsyncClient, ledger: Ledger, providers_doc: dict[str, Any]
) -> None:
    # Another router on the same ledger (another server, or a batch's), running before the change.
    other = TaskEngine.open(parse_config(providers_doc, "providers.yaml"), ledger)
    try:
        first = await other.route(AITask(id="before", type="code_review", prompt="p"))
        assert first.routed.provider_id == "fast"
        assert (await client.post("/api/v1/providers", json=NEW, headers=auth(ADMIN_TOKEN))).status_code == 201
        await asyncio.sleep(1.1)  # it looks at the overlay at most once a second
        after = await other.route(AITask(id="after", type="code_review", prompt="p"))
        assert after.routed.provider_id == "added"
    finally:
        await asyncio.to_thread(other.close)


@pytest.mark.slow
async def test_a_provider_added_through_the_api_is_used_by_a_switchboard_run_in_another_process(
    client: httpx.AsyncClient, ledger_url: str, tmp_path: Path
) -> None:
    assert (await client.post("/api/v1/providers", json=NEW, headers=auth(ADMIN_TOKEN))).status_code == 201
    spec = tmp_path / "spec.yaml"
    tasks = [{"id": f"t{i}", "type": "code_review", "prompt": f"p{i}"} for i in range(3)]
    spec.write_text(yaml.safe_dump({"name": "elsewhere", "tasks": tasks}))
    # The same providers file (which has no `added`) and the same ledger, in a process of its own.
    env = cli_env(tmp_path, SWITCHBOARD_DATABASE_URL=ledger_url)
    argv = ("run", str(spec), "--providers", str(tmp_path / "providers.yaml"), "--json")
    result = await asyncio.to_thread(switchboard, *argv, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {t["provider"] for t in json.loads(result.stdout)["tasks"]} == {"added"}  # priority 0 comes first


async def test_reset_clears_a_quota_block_and_is_recorded(
    make_client: Callable[[dict[str, Any]], httpx.AsyncClient], providers_doc: dict[str, Any], ledger: Ledger
) -> None:
    providers_doc["providers"]["drained"] = {
        "type": "local_mock",
        "priority": 0,
        "latency_ms": 0,
        "failure_rate": 1.0,
        "fail_with": "quota_exhausted",
    }
    async with make_client(providers_doc) as c:
        task = await c.post("/api/v1/tasks", json={"type": "code_review", "prompt": "p"}, headers=auth(ADMIN_TOKEN))
        assert [a["outcome"] for a in task.json()["attempts"]] == ["quota_exhausted", "success"]
        health = (await c.get("/api/v1/providers/drained/health", headers=auth(READ_TOKEN))).json()
        assert health["quota"][0]["blocked_until"] is not None
        r = await c.post("/api/v1/providers/drained/reset", headers=auth(ADMIN_TOKEN))
        assert r.status_code == 200, r.text
        assert any(line.startswith("provider: ") and "quota" in line for line in r.json()["cleared"]), r.json()
        assert r.json()["status"]["quota"][0]["blocked_until"] is None
        assert (await c.post("/api/v1/providers/nope/reset", headers=auth(ADMIN_TOKEN))).status_code == 404
    change = admin_changes(ledger)[0]
    assert (change.who, change.action, change.target) == ("ops", "provider.reset", "provider:drained")
    # Every other router hears of it through the ledger: the shared store's reset event.
    assert [e.provider_id for e in ledger.events_since(change.at - timedelta(seconds=5), [RESET_EVENT])] == ["drained"]


async def test_reset_closes_an_open_circuit(
    make_client: Callable[[dict[str, Any]], httpx.AsyncClient], providers_doc: dict[str, Any]
) -> None:
    providers_doc["circuit"] = {"failure_threshold": 1, "cooldown_s": 600}
    providers_doc["providers"]["down"] = {
        "type": "local_mock",
        "priority": 0,
        "latency_ms": 0,
        "failure_rate": 1.0,
        "fail_with": "unavailable",
    }
    async with make_client(providers_doc) as c:
        task = await c.post("/api/v1/tasks", json={"type": "code_review", "prompt": "p"}, headers=auth(ADMIN_TOKEN))
        assert [a["outcome"] for a in task.json()["attempts"]] == ["unavailable", "success"]
        health = (await c.get("/api/v1/providers/down/health", headers=auth(READ_TOKEN))).json()
        assert health["circuit"]["state"] == "open"
        r = await c.post("/api/v1/providers/down/reset", headers=auth(ADMIN_TOKEN))
        assert r.status_code == 200, r.text
        assert "circuit: open" in r.json()["cleared"], r.json()
        assert r.json()["status"]["circuit"]["state"] != "open"
        after = (await c.get("/api/v1/providers/down/health", headers=auth(READ_TOKEN))).json()
        assert after["circuit"]["state"] != "open"


def _pending_batch(ledger: Ledger) -> tuple[str, Any]:
    spec = parse_spec(
        {"name": "later", "tasks": [{"id": f"b{i}", "type": "code_review", "prompt": f"b{i}"} for i in range(3)]}, "s"
    )
    run_id, _ = start_run(ledger, spec, "priority_based", fresh=True)
    return run_id, spec


async def test_a_preference_set_for_a_pending_task_decides_its_provider_when_it_runs(
    client: httpx.AsyncClient, ledger: Ledger, providers_doc: dict[str, Any]
) -> None:
    run_id, spec = _pending_batch(ledger)
    r = await client.put(f"/api/v1/tasks/{run_id}:b1/provider", json={"provider": "backup"}, headers=auth(ADMIN_TOKEN))
    assert r.status_code == 200, r.text
    assert r.json()["preference"]["provider"] == "backup" and r.json()["preference"]["set_by"] == "ops"
    runtime = open_runtime(spec, parse_config(providers_doc, "p.yaml"), "priority_based", run_id=run_id, ledger=ledger)
    try:
        await asyncio.to_thread(run_nodes, runtime, ["b0", "b1", "b2"])
    finally:
        close_runtime(run_id)
    served = {t: ledger.task_state(run_id, t).provider_id for t in ("b0", "b1", "b2")}  # type: ignore[union-attr]
    assert served == {"b0": "fast", "b1": "backup", "b2": "fast"}
    done = await client.put(f"/api/v1/tasks/{run_id}:b1/provider", json={"provider": "fast"}, headers=auth(ADMIN_TOKEN))
    assert done.status_code == 409 and "has run already" in done.json()["detail"]
    empty = await client.put(f"/api/v1/tasks/{run_id}:b2/provider", json={}, headers=auth(ADMIN_TOKEN))
    assert empty.status_code == 422
    change = admin_changes(ledger)[0]
    assert (change.action, change.target) == ("task.prefer", f"task:{run_id}:b1")


async def test_a_preference_set_while_a_batch_runs_decides_a_task_not_started_yet(
    client: httpx.AsyncClient, ledger: Ledger, providers_doc: dict[str, Any]
) -> None:
    # b0 takes about two seconds; b1 waits for it. The preference for b1 is set while b0 runs.
    providers_doc["providers"]["fast"]["latency_ms"] = 2000
    spec = parse_spec(
        {
            "name": "running",
            "tasks": [
                {"id": "b0", "type": "code_review", "prompt": "slow"},
                {"id": "b1", "type": "code_review", "prompt": "next", "depends_on": ["b0"]},
            ],
        },
        "s",
    )
    run_id, _ = start_run(ledger, spec, "priority_based", fresh=True)
    runtime = open_runtime(spec, parse_config(providers_doc, "p.yaml"), "priority_based", run_id=run_id, ledger=ledger)
    try:
        running = asyncio.create_task(asyncio.to_thread(run_nodes, runtime, ["b0", "b1"]))
        await asyncio.sleep(0.3)
        r = await client.put(f"/api/v1/tasks/{run_id}:b1/provider", json={"model": "mock-2"}, headers=auth(ADMIN_TOKEN))
        assert r.status_code == 200
        started = time.monotonic()
        await running
        assert time.monotonic() - started > 0.5  # b0 was still running when the preference was set
    finally:
        close_runtime(run_id)
    assert ledger.task_state(run_id, "b1").provider_id == "backup"  # type: ignore[union-attr]


@pytest.mark.parametrize("ref", ["api-20990101:nope", "no-colon"])
async def test_a_preference_for_an_unknown_task_is_404(client: httpx.AsyncClient, ref: str) -> None:
    r = await client.put(f"/api/v1/tasks/{ref}/provider", json={"provider": "fast"}, headers=auth(ADMIN_TOKEN))
    assert r.status_code == 404
