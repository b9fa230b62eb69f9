"""POST /tasks routes one task through the same router, limits and ledger as batches; a task is read back by
`<run id>:<task id>`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from batches import close_runtime, open_runtime, parse_spec, run_nodes, start_run
from ledger import Ledger, TaskStatus
from providers import utc_now
from routing import parse_config
from tests.api.api_kit import ADMIN_TOKEN, READ_TOKEN, auth


async def test_a_task_is_routed_answered_and_recorded_in_the_run_of_its_day(
    client: httpx.AsyncClient, ledger: Ledger
) -> None:
    r = await client.post(
        "/api/v1/tasks",
        json={"id": "review-1", "type": "code_review", "prompt": "Review PR 1", "team": "platform"},
        headers=auth(ADMIN_TOKEN),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    day_run = f"api-{utc_now():%Y%m%d}"
    assert body["id"] == f"{day_run}:review-1" and body["run_id"] == day_run
    assert body["status"] == "completed" and body["provider"] == "fast"
    assert body["output"] and body["output"].startswith("Code review:")
    assert [(a["provider"], a["outcome"]) for a in body["attempts"]] == [("fast", "success")]
    assert body["decision"]["chosen"] == "fast" and body["decision"]["order"][0] == "fast"
    # In the ledger, as a batch's task would be: the run, the task row, the attempt.
    run = ledger.get_run(day_run)
    assert run is not None and run.batch_name == "api"
    state = ledger.task_state(day_run, "review-1")
    assert state is not None and state.status == TaskStatus.COMPLETED and state.team == "platform"
    assert [a.team for a in ledger.attempts(day_run, "review-1")] == ["platform"]

    again = await client.get(f"/api/v1/tasks/{day_run}:review-1", headers=auth(READ_TOKEN))
    assert again.status_code == 200 and again.json() == body
    provider = await client.get(f"/api/v1/tasks/{day_run}:review-1/provider", headers=auth(READ_TOKEN))
    assert provider.json()["provider"] == "fast" and provider.json()["decision"] == body["decision"]


async def test_ids_are_generated_unique_and_a_taken_one_is_refused(client: httpx.AsyncClient) -> None:
    first = (await client.post("/api/v1/tasks", json={"type": "t", "prompt": "p"}, headers=auth(ADMIN_TOKEN))).json()
    second = (await client.post("/api/v1/tasks", json={"type": "t", "prompt": "p"}, headers=auth(ADMIN_TOKEN))).json()
    assert first["task_id"] != second["task_id"]
    taken = await client.post(
        "/api/v1/tasks", json={"id": first["task_id"], "type": "t", "prompt": "p"}, headers=auth(ADMIN_TOKEN)
    )
    assert taken.status_code == 409 and "already taken" in taken.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "t"}, "prompt"),
        ({"type": "t", "prompt": ""}, "prompt"),
        ({"type": "t", "prompt": "p", "priority": "urgent"}, "priority"),
        ({"type": "t", "prompt": "p", "colour": "red"}, "colour"),
        ({"type": "t", "prompt": "p", "id": "has space"}, "id"),
        ({"type": "t", "prompt": "p", "max_attempts": 0}, "max_attempts"),
    ],
)
async def test_a_bad_body_gets_a_422_naming_the_field(client: httpx.AsyncClient, body: dict, field: str) -> None:
    r = await client.post("/api/v1/tasks", json=body, headers=auth(ADMIN_TOKEN))
    assert r.status_code == 422
    assert any(field in detail["loc"] for detail in r.json()["detail"])


async def test_unknown_tasks_are_404(client: httpx.AsyncClient) -> None:
    for ref in ("api-20990101:nope", "no-colon"):
        r = await client.get(f"/api/v1/tasks/{ref}", headers=auth(READ_TOKEN))
        assert r.status_code == 404, ref


async def test_a_preferred_provider_or_model_is_tried_first(client: httpx.AsyncClient) -> None:
    by_provider = await client.post(
        "/api/v1/tasks", json={"type": "t", "prompt": "p", "provider": "backup"}, headers=auth(ADMIN_TOKEN)
    )
    assert by_provider.json()["provider"] == "backup"
    assert by_provider.json()["decision"]["preference"]["honored"] is True
    by_model = await client.post(
        "/api/v1/tasks", json={"type": "t", "prompt": "p", "model": "mock-2"}, headers=auth(ADMIN_TOKEN)
    )
    assert by_model.json()["provider"] == "backup"
    refused = await client.post(
        "/api/v1/tasks", json={"type": "code_review", "prompt": "p", "provider": "remote"}, headers=auth(ADMIN_TOKEN)
    )
    assert refused.json()["provider"] == "fast"
    assert refused.json()["decision"]["preference"] == {
        "provider": "remote",
        "model": None,
        "honored": False,
        "reason": "remote cannot take the task now (capability); routed as usual",
    }


def _run_batch(ledger: Ledger, doc: dict[str, Any], n: int, name: str) -> list[str]:
    """A batch of `n` tasks run by the batch core (as a flow's nodes run them); the providers of its attempts."""
    spec = parse_spec(
        {"name": name, "tasks": [{"id": f"b{i}", "type": "code_review", "prompt": f"b{i}"} for i in range(n)]}, name
    )
    config = parse_config(doc, "providers.yaml")
    run_id, _ = start_run(ledger, spec, "priority_based", fresh=True)
    runtime = open_runtime(spec, config, "priority_based", run_id=run_id, ledger=ledger)
    try:
        run_nodes(runtime, [t.id for t in spec.tasks])
    finally:
        close_runtime(run_id)
    return [a.provider_id for a in sorted(ledger.attempts(run_id), key=lambda a: a.task_id)]


async def test_tasks_routed_here_count_against_the_same_limits_as_a_batch(
    make_client: Callable[[dict[str, Any]], httpx.AsyncClient], providers_doc: dict[str, Any], ledger: Ledger
) -> None:
    # `fast` allows 5 requests an hour, of which normal tasks may use 4 (reserve_for_critical 0.1).
    assert _run_batch(ledger, providers_doc, 3, "before") == ["fast", "fast", "fast"]
    async with make_client(providers_doc) as c:
        fourth = (
            await c.post("/api/v1/tasks", json={"type": "code_review", "prompt": "p"}, headers=auth(ADMIN_TOKEN))
        ).json()
        fifth = (
            await c.post("/api/v1/tasks", json={"type": "code_review", "prompt": "p"}, headers=auth(ADMIN_TOKEN))
        ).json()
    assert fourth["provider"] == "fast"
    assert fifth["provider"] == "backup"
    assert fifth["decision"]["skipped"]["fast"].startswith("quota: requests_per_hour 4/5")
    # ... and what the API routed counts against the next batch.
    assert _run_batch(ledger, providers_doc, 2, "after") == ["backup", "backup"]


async def test_with_the_cache_on_a_repeated_task_is_answered_from_it_unless_it_opts_out(
    make_client: Callable[[dict[str, Any]], httpx.AsyncClient], providers_doc: dict[str, Any]
) -> None:
    task = {"type": "code_review", "prompt": "Review PR 9", "team": "platform"}
    async with make_client({**providers_doc, "cache": {"enabled": True}}) as client:
        first = (await client.post("/api/v1/tasks", json=task, headers=auth(ADMIN_TOKEN))).json()
        hit = (await client.post("/api/v1/tasks", json=task, headers=auth(ADMIN_TOKEN))).json()
        opted_out = await client.post("/api/v1/tasks", json={**task, "cache": False}, headers=auth(ADMIN_TOKEN))
    assert first["provider"] == "fast" and first["decision"].get("cache") is None
    assert hit["provider"] == "cache" and hit["output"] == first["output"] and hit["cost_usd"] == 0
    assert hit["decision"]["cache"]["task_id"] == first["task_id"]
    assert opted_out.json()["provider"] == "fast"


async def test_a_task_waiting_in_a_vendor_batch_says_so_with_the_vendors_batch_id(
    client: httpx.AsyncClient, ledger: Ledger
) -> None:
    from ledger import NewTask, VendorState, record_vendor_submission, settle_vendor_request

    run_id, _ = ledger.start_or_resume_run(
        batch_name="nightly",
        batch_hash="h",
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id=t, task_type="summarization", priority="normal") for t in ("waits", "done", "live")],
    )
    record_vendor_submission(ledger, run_id, "claude-api", "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF", {"waits": "sb-1"})
    record_vendor_submission(ledger, run_id, "claude-api", "msgbatch_01other", {"live": "sb-2"})
    settle_vendor_request(ledger, run_id, "live", "claude-api", VendorState.FELL_BACK, "deadline")
    waits = (await client.get(f"/api/v1/tasks/{run_id}:waits", headers=auth(READ_TOKEN))).json()
    assert waits["status"] == "pending"
    assert waits["vendor_batch"] == {
        "id": "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF",
        "provider": "claude-api",
        "state": "waiting",
        "detail": None,
    }
    live = (await client.get(f"/api/v1/tasks/{run_id}:live", headers=auth(READ_TOKEN))).json()
    assert live["vendor_batch"]["state"] == "fell_back" and live["vendor_batch"]["detail"] == "deadline"
    done = (await client.get(f"/api/v1/tasks/{run_id}:done", headers=auth(READ_TOKEN))).json()
    assert done["vendor_batch"] is None
