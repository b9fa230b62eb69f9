"""`POST /api/v1/tasks` with a `deadline`: a 202 at once, routing in the background, waiting in a vendor batch API
(against stand-ins that speak the Anthropic Message Batches and OpenAI Batch formats) at the batch price, going
live when the deadline is too near, and what a server stop leaves behind."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import DateTime, column, select, table, update

from api.state import ApiState
from batches import API_BATCH_NAME, STOPPED, api_run_id
from ledger import UTC_DAY, ApiDeferredTask, Ledger, LimitStore, VendorState, vendor_requests
from providers import utc_now
from tests.api.api_kit import ADMIN_TOKEN, READ_TOKEN, auth
from tests.fakes.fake_batch_apis import ANSWER, LIVE_ANSWER, FakeAnthropicBatches, FakeOpenAIBatches

KEY_ENV = "SWITCHBOARD_TEST_BATCH_KEY"
# Quick vendor batch settings: gathered for 50 ms, polled every 20-100 ms; a deadline under 1 s goes live.
FAST = {
    "enabled": True,
    "gather_s": 0.05,
    "poll_initial_s": 0.02,
    "poll_max_s": 0.1,
    "min_wait_s": 1.0,
    "live_margin_s": 1.0,
}
Fake = FakeAnthropicBatches | FakeOpenAIBatches
RUNS = table("runs", column("run_id"), column("started_at", DateTime(timezone=True)))  # to move a run's start
MakeClient = Callable[[dict[str, Any]], httpx.AsyncClient]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-0123456789abcdef")


@pytest.fixture(params=["anthropic", "openai"])
def fake(request: pytest.FixtureRequest) -> Iterator[Fake]:
    server: Fake = FakeAnthropicBatches(None) if request.param == "anthropic" else FakeOpenAIBatches(None)
    with server:
        yield server  # its batches stay in progress until the test ends them


def vendor_doc(fake: Fake, batch: dict[str, Any] | None = FAST) -> dict[str, Any]:
    if isinstance(fake, FakeAnthropicBatches):
        provider: dict[str, Any] = {"type": "anthropic", "base_url": fake.url, "api_key_env": KEY_ENV}
    else:
        provider = {
            "type": "openai_compatible",
            "base_url": fake.url + "/v1",
            "model": "gpt-4o",
            "api_key_env": KEY_ENV,
        }
    if batch is not None:
        provider["batch"] = batch
    return {"version": 1, "strategy": "priority_based", "providers": {"api": provider}}


TASK = {"type": "summarization", "prompt": "Summarize the night's logs"}


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/api/v1/tasks", json=body, headers=auth(ADMIN_TOKEN))


async def read_until(
    client: httpx.AsyncClient, location: str, done: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """GET the task until `done` holds (the background routing runs on the engine thread)."""
    task: dict[str, Any] = {}
    for _ in range(500):
        task = (await client.get(location, headers=auth(READ_TOKEN))).json()
        if done(task):
            return task
        await asyncio.sleep(0.02)
    raise AssertionError(f"the task never got {what}: {task}")


async def test_a_task_with_a_deadline_waits_in_a_vendor_batch_and_is_answered_at_the_batch_price(
    make_client: MakeClient, fake: Fake, ledger: Ledger
) -> None:
    async with make_client(vendor_doc(fake)) as client:
        accepted = await post(client, {**TASK, "id": "nightly-1", "deadline": "12h"})
        assert accepted.status_code == 202
        body = accepted.json()
        assert body["status"] == "pending" and body["task_id"] == "nightly-1" and body["output"] is None
        assert body["id"] == f"{body['run_id']}:nightly-1"
        location = accepted.headers["location"]
        assert location == f"/api/v1/tasks/{body['id']}"

        waiting = await read_until(client, location, lambda t: t["vendor_batch"] is not None, "a vendor batch")
        (batch_id,) = fake.batches
        assert waiting["status"] == "pending"
        assert waiting["vendor_batch"] == {"id": batch_id, "provider": "api", "state": "waiting", "detail": None}

        fake.end(batch_id)
        done = await read_until(client, location, lambda t: t["status"] != "pending", "an answer")
    assert done["status"] == "completed" and done["output"] == ANSWER and done["provider"] == "api"
    assert done["vendor_batch"]["state"] == "done"
    (attempt,) = done["attempts"]
    assert attempt["vendor_batch_id"] == batch_id
    assert attempt["cost_usd"] == pytest.approx(attempt["list_price_usd"] / 2) and attempt["cost_usd"] > 0
    assert done["cost_usd"] == attempt["cost_usd"]
    assert fake.created == 1 and fake.live_calls == 0


async def test_a_deadline_counts_from_the_request_not_from_the_start_of_the_days_run(
    make_client: MakeClient, fake: Fake, ledger: Ledger
) -> None:
    run_id = api_run_id()
    ledger.open_standing_run(run_id, batch_name=API_BATCH_NAME)
    with ledger.engine.begin() as db:  # the day's run began an hour ago (its first task)
        db.execute(update(RUNS).where(RUNS.c.run_id == run_id).values(started_at=utc_now() - timedelta(hours=1)))
    async with make_client(vendor_doc(fake)) as client:
        accepted = await post(client, {**TASK, "deadline": "30m"})  # past, counted from the run's start
        waiting = await read_until(
            client, accepted.headers["location"], lambda t: t["vendor_batch"] is not None, "a vendor batch"
        )
    assert waiting["run_id"] == run_id and waiting["vendor_batch"]["state"] == "waiting"
    assert fake.live_calls == 0


async def test_a_deadline_too_near_for_a_vendor_batch_is_answered_live_in_the_background(
    make_client: MakeClient, fake: Fake
) -> None:
    async with make_client(vendor_doc(fake)) as client:
        accepted = await post(client, {**TASK, "deadline": "0.5s"})  # under min_wait_s: no time to wait
        assert accepted.status_code == 202
        done = await read_until(client, accepted.headers["location"], lambda t: t["status"] != "pending", "an answer")
    assert done["status"] == "completed" and done["output"] == LIVE_ANSWER
    assert done["vendor_batch"] is None and "vendor_batch_id" not in done["attempts"][0]
    assert fake.created == 0 and fake.live_calls == 1


async def test_without_a_provider_offering_a_batch_api_a_deadline_task_routes_live(
    make_client: MakeClient, fake: Fake
) -> None:
    async with make_client(vendor_doc(fake, batch=None)) as client:
        accepted = await post(client, {**TASK, "deadline": "12h"})
        assert accepted.status_code == 202
        done = await read_until(client, accepted.headers["location"], lambda t: t["status"] != "pending", "an answer")
    assert done["output"] == LIVE_ANSWER and fake.created == 0


async def test_without_a_deadline_the_task_is_answered_in_the_request_and_live(
    make_client: MakeClient, fake: Fake
) -> None:
    async with make_client(vendor_doc(fake)) as client:
        answered = await post(client, TASK)
    assert answered.status_code == 200 and "location" not in answered.headers
    body = answered.json()
    assert body["status"] == "completed" and body["output"] == LIVE_ANSWER
    assert fake.created == 0 and fake.live_calls == 1


@pytest.mark.parametrize("deadline", ["soon", "12x", "0s", "", "-1h", "367d", "99999999999d", 12])
async def test_a_bad_deadline_is_a_422_naming_it(client: httpx.AsyncClient, deadline: object) -> None:
    answer = await post(client, {**TASK, "deadline": deadline})
    assert answer.status_code == 422
    assert [e["loc"] for e in answer.json()["detail"]] == [["body", "deadline"]]


async def test_a_taken_id_with_a_deadline_is_a_409_before_anything_routes(client: httpx.AsyncClient) -> None:
    first = await post(client, {**TASK, "id": "once"})
    again = await post(client, {**TASK, "id": "once", "deadline": "1h"})
    assert first.status_code == 200 and again.status_code == 409


def switchboard(client: httpx.AsyncClient) -> ApiState:
    return client._transport.app.state.switchboard  # type: ignore[attr-defined,no-any-return]


async def test_a_server_stop_leaves_a_waiting_task_to_the_next_start_which_polls_its_vendor_batch(
    make_client: MakeClient, fake: Fake, ledger: Ledger
) -> None:
    async with make_client(vendor_doc(fake)) as client:
        accepted = await post(client, {**TASK, "deadline": "12h"})
        location = accepted.headers["location"]
        await read_until(client, location, lambda t: t["vendor_batch"] is not None, "a vendor batch")
        state = switchboard(client)
        await asyncio.to_thread(state.close)  # what the server's shutdown does
        stopped = (await client.get(location, headers=auth(READ_TOKEN))).json()
        (row,) = vendor_requests(ledger, stopped["run_id"])
        assert row.state == VendorState.WAITING and fake.cancelled == []  # the vendor batch runs on
        await asyncio.to_thread(state.reopen)  # a server start: it routes the task again
        fake.end()
        done = await read_until(client, location, lambda t: t["status"] != "pending", "an answer")
    assert stopped["status"] == "pending" and stopped["vendor_batch"]["state"] == "waiting"
    assert done["status"] == "completed" and done["output"] == ANSWER
    assert done["vendor_batch"] == {**stopped["vendor_batch"], "state": "done"}
    assert fake.created == 1 and fake.live_calls == 0  # polled, never submitted twice
    await until(lambda: kept_tasks(ledger) == [])  # the prompt leaves the ledger once the answer is in


async def test_a_task_not_yet_in_a_vendor_batch_when_the_server_stops_is_cancelled(
    make_client: MakeClient, fake: Fake, ledger: Ledger
) -> None:
    async with make_client(vendor_doc(fake, batch={**FAST, "gather_s": 60.0})) as client:
        accepted = await post(client, {**TASK, "deadline": "12h"})  # gathered for a minute before it goes out
        state = switchboard(client)
        await asyncio.to_thread(state.close)
        await asyncio.to_thread(state.reopen)
        stopped = (await client.get(accepted.headers["location"], headers=auth(READ_TOKEN))).json()
    assert stopped["status"] == "cancelled" and stopped["error"] == STOPPED and stopped["vendor_batch"] is None
    assert fake.created == 0 and fake.live_calls == 0 and kept_tasks(ledger) == []


def _exited_process() -> str:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{socket.gethostname()}:{child.pid}"


@pytest.mark.parametrize("owner", ["exited", "elsewhere"])
async def test_the_tasks_of_an_api_that_died_are_taken_by_the_next_start_on_its_machine(
    make_client: MakeClient, fake: Fake, ledger: Ledger, owner: str
) -> None:
    async with make_client(vendor_doc(fake)) as client:
        accepted = await post(client, {**TASK, "deadline": "12h"})
        location = accepted.headers["location"]
        await read_until(client, location, lambda t: t["vendor_batch"] is not None, "a vendor batch")
        state = switchboard(client)
        await asyncio.to_thread(state.close)
        # As if it had been killed instead: still its owner's. One on another machine may be alive.
        dead = _exited_process() if owner == "exited" else "another-host:4242"
        with ledger.engine.begin() as db:
            db.execute(update(ApiDeferredTask).values(owner=dead))
        await asyncio.to_thread(state.reopen)
        fake.end()
        if owner == "exited":
            done = await read_until(client, location, lambda t: t["status"] != "pending", "an answer")
            assert done["output"] == ANSWER
            await until(lambda: kept_tasks(ledger) == [])
        else:
            await asyncio.sleep(0.3)  # several poll intervals: nobody here polls the batch
            left = (await client.get(location, headers=auth(READ_TOKEN))).json()
            assert left["status"] == "pending" and kept_tasks(ledger) == [dead]
    assert fake.created == 1 and fake.live_calls == 0


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def kept_tasks(ledger: Ledger) -> list[str | None]:
    """The owners of the API tasks the ledger keeps."""
    with ledger.engine.connect() as db:
        return list(db.execute(select(ApiDeferredTask.owner)).scalars())


async def test_a_waiting_task_holds_its_estimate_in_the_day_budget_also_after_a_server_stop(
    make_client: MakeClient, fake: Fake, ledger: Ledger
) -> None:
    """The vendor charges a submitted request whoever waits for it: the API's stop keeps its budget hold."""
    store = LimitStore(ledger.engine, owner="reader")

    def held() -> float:
        return store.usage("budget:day", UTC_DAY)[5]  # reserved cost

    async with make_client({**vendor_doc(fake), "budget": {"max_cost_usd_per_day": 100.0}}) as client:
        accepted = await post(client, {**TASK, "deadline": "12h"})
        await read_until(client, accepted.headers["location"], lambda t: t["vendor_batch"] is not None, "a batch")
        for _ in range(500):  # the shared store takes the hold on its own thread
            if held() > 0:
                break
            await asyncio.sleep(0.02)
        waiting = held()
        await asyncio.to_thread(switchboard(client).close)
    assert waiting > 0
    assert held() == pytest.approx(waiting)


async def test_the_openapi_document_describes_the_deadline_and_the_202(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    post_task = doc["paths"]["/api/v1/tasks"]["post"]
    accepted = post_task["responses"]["202"]
    assert accepted["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TaskOut"}
    assert "Location" in accepted["headers"]
    deadline = doc["components"]["schemas"]["TaskRequest"]["properties"]["deadline"]
    assert "vendor batch" in deadline["description"]
