"""Deferrable tasks through vendor batch APIs, the whole node path (spec -> runtime -> router -> vendor batch ->
ledger) against stand-ins that speak the Anthropic Message Batches and OpenAI Batch formats: batch price, the
vendor batch id in the ledger, deadlines that are too short or that pass (fall back live, vendor batch
cancelled), expired and errored requests, and a restart that polls the batch instead of submitting it again."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from batches import close_runtime, forget_stop, open_runtime, parse_spec, run_nodes, run_stop, run_summary
from batches.run_state import NodeResult
from batches.runtime import BatchRuntime
from batches.stopping import StopReason
from ledger import Ledger, NewTask, TaskStatus, VendorState, vendor_requests
from routing import ProviderRegistry, Router, RunInfo, parse_config
from tests.fakes.fake_batch_apis import ANSWER, LIVE_ANSWER, FakeAnthropicBatches, FakeOpenAIBatches

KEY_ENV = "SWITCHBOARD_TEST_BATCH_KEY"
FAST = {"gather_s": 0.05, "poll_initial_s": 0.02, "poll_max_s": 0.1, "min_wait_s": 1.0, "live_margin_s": 1.0}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-0123456789abcdef")


def providers_doc(vendor: str, url: str, batch: dict[str, Any] | None = FAST) -> dict[str, Any]:
    if vendor == "anthropic":
        provider: dict[str, Any] = {"type": "anthropic", "base_url": url, "api_key_env": KEY_ENV}
    else:
        provider = {"type": "openai_compatible", "base_url": url + "/v1", "model": "gpt-4o", "api_key_env": KEY_ENV}
    if batch is not None:
        provider["batch"] = batch
    return {"strategy": "priority_based", "providers": {"api": provider}}


def spec_of(tasks: list[dict[str, Any]], **batch: Any) -> Any:
    return parse_spec({"name": "deferred", "tasks": tasks, **batch}, "spec.yaml")


def open_run(ledger: Ledger, spec: Any, doc: dict[str, Any], run_id: str | None = None) -> BatchRuntime:
    if run_id is None:
        run_id, _ = ledger.start_or_resume_run(
            batch_name=spec.name,
            batch_hash=spec.content_hash(),
            team=None,
            strategy="priority_based",
            tasks=[NewTask(task_id=t.id, task_type=t.type, priority="normal") for t in spec.tasks],
        )
    return open_runtime(spec, parse_config(doc, "providers.yaml"), "priority_based", run_id=run_id, ledger=ledger)


def start_run(ledger: Ledger, task_id: str) -> str:
    """A run of one summarization task, for tests that drive DeferredCalls or a router without a runtime."""
    run_id, _ = ledger.start_or_resume_run(
        batch_name="deferred", batch_hash="h", team=None, strategy="priority_based",
        tasks=[NewTask(task_id=task_id, task_type="summarization", priority="normal")],
    )  # fmt: skip
    return run_id


def wait_until_submitted(ledger: Ledger, run_id: str, seconds: float = 10.0) -> None:
    """Until the run's first vendor batch is in the ledger (the test's next assertions say if it never came)."""
    deadline = time.monotonic() + seconds
    while not vendor_requests(ledger, run_id) and time.monotonic() < deadline:
        time.sleep(0.02)


def run_all(runtime: BatchRuntime) -> dict[str, NodeResult]:
    try:
        return {r.task_id: r for r in run_nodes(runtime, [t.id for t in runtime.spec.tasks])}
    finally:
        close_runtime(runtime.run.run_id)


@pytest.fixture(params=["anthropic", "openai"])
def vendor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def fake_for(vendor: str, polls_to_end: int | None = 1) -> FakeAnthropicBatches | FakeOpenAIBatches:
    return FakeAnthropicBatches(polls_to_end) if vendor == "anthropic" else FakeOpenAIBatches(polls_to_end)


def test_deferrable_tasks_go_out_as_one_vendor_batch_at_its_price(vendor: str, ledger: Ledger) -> None:
    tasks = [{"id": f"t{i}", "type": "summarization", "prompt": f"Summarize {i}", "deadline": "12h"} for i in range(3)]
    with fake_for(vendor) as fake:
        runtime = open_run(ledger, spec_of(tasks), providers_doc(vendor, fake.url))
        run_id = runtime.run.run_id
        results = run_all(runtime)
    assert {r.status for r in results.values()} == {TaskStatus.COMPLETED}
    assert {r.output for r in results.values()} == {ANSWER}
    assert fake.created == 1 and fake.live_calls == 0  # gathered into one vendor batch
    (batch_id,) = fake.batches
    attempts = ledger.attempts(run_id)
    assert len(attempts) == 3
    for attempt in attempts:
        assert attempt.outcome == "success"
        assert attempt.list_price_usd is not None and attempt.list_price_usd > 0
        assert attempt.cost_usd == pytest.approx(attempt.list_price_usd / 2)  # the batch price, list beside it
        assert attempt.vendor_batch_id == batch_id
    # Hours of waiting by choice say nothing of the provider's speed: the adaptive memory leaves them out.
    assert ledger.history(attempts[0].started_at - timedelta(hours=1)) == []
    rows = vendor_requests(ledger, run_id)
    assert {(r.vendor_batch_id, r.state) for r in rows} == {(batch_id, VendorState.DONE)}


def test_tasks_that_cannot_wait_go_live(vendor: str, ledger: Ledger) -> None:
    tasks = [
        {"id": "plain", "type": "summarization", "prompt": "no deadline, batch not deferrable"},
        {"id": "soon", "type": "summarization", "prompt": "due too soon", "deadline": "0.2s"},
    ]
    with fake_for(vendor) as fake:
        runtime = open_run(ledger, spec_of(tasks), providers_doc(vendor, fake.url))
        results = run_all(runtime)
    assert {r.output for r in results.values()} == {LIVE_ANSWER}
    assert fake.created == 0 and fake.live_calls == 2


def test_a_provider_without_batch_answers_deferrable_work_live(vendor: str, ledger: Ledger) -> None:
    tasks = [{"id": "t", "type": "summarization", "prompt": "p"}]
    with fake_for(vendor) as fake:
        runtime = open_run(ledger, spec_of(tasks, deferrable=True), providers_doc(vendor, fake.url, batch=None))
        assert runtime.deferred is None
        results = run_all(runtime)
    assert results["t"].output == LIVE_ANSWER and fake.created == 0


def test_deferred_work_that_would_miss_its_deadline_falls_back_live(vendor: str, ledger: Ledger) -> None:
    # The vendor never finishes; the task must leave 1 s (live_margin_s) before its 2.5 s deadline.
    tasks = [{"id": "late", "type": "summarization", "prompt": "slow batch", "deadline": "2.5s"}]
    with fake_for(vendor, polls_to_end=None) as fake:
        runtime = open_run(ledger, spec_of(tasks), providers_doc(vendor, fake.url))
        run_id = runtime.run.run_id
        started = time.monotonic()
        results = run_all(runtime)
        took = time.monotonic() - started
    assert results["late"].status == TaskStatus.COMPLETED and results["late"].output == LIVE_ANSWER
    assert 1.0 <= took < 2.5  # left before the deadline, not a poll later
    (batch_id,) = fake.batches
    assert fake.cancelled == [batch_id]  # nobody waits on it any more
    (row,) = vendor_requests(ledger, run_id)
    assert (row.state, row.detail) == (VendorState.FELL_BACK, "deadline")
    (attempt,) = ledger.attempts(run_id)
    assert attempt.list_price_usd is None and attempt.cost_usd > 0  # the live call at list price
    assert attempt.vendor_batch_id is None


def test_a_whole_deferrable_batch_without_deadlines_waits(vendor: str, ledger: Ledger) -> None:
    tasks = [{"id": "a", "type": "summarization", "prompt": "one"}, {"id": "b", "type": "summarization", "prompt": "2"}]
    with fake_for(vendor) as fake:
        results = run_all(open_run(ledger, spec_of(tasks, deferrable=True), providers_doc(vendor, fake.url)))
    assert {r.output for r in results.values()} == {ANSWER} and fake.created == 1


def test_expired_requests_are_answered_live(vendor: str, ledger: Ledger) -> None:
    tasks = [
        {"id": "ok", "type": "summarization", "prompt": "fine", "deadline": "12h"},
        {"id": "exp", "type": "summarization", "prompt": "this one [expired]", "deadline": "12h"},
    ]
    with fake_for(vendor) as fake:
        runtime = open_run(ledger, spec_of(tasks), providers_doc(vendor, fake.url))
        run_id = runtime.run.run_id
        results = run_all(runtime)
    assert results["ok"].output == ANSWER and results["exp"].output == LIVE_ANSWER
    assert fake.live_calls == 1
    states = {r.task_id: (r.state, r.detail) for r in vendor_requests(ledger, run_id)}
    assert states == {"ok": (VendorState.DONE, None), "exp": (VendorState.FELL_BACK, "expired")}


def test_errored_requests_map_to_the_live_outcomes(vendor: str, ledger: Ledger) -> None:
    refused = "[errored:invalid_request_error]" if vendor == "anthropic" else "[errored:400]"
    busy = "[errored:overloaded_error]" if vendor == "anthropic" else "[errored:503]"
    tasks = [
        {"id": "bad", "type": "summarization", "prompt": f"refused {refused}", "deadline": "12h"},
        {"id": "busy", "type": "summarization", "prompt": f"busy {busy}", "deadline": "12h"},
    ]
    with fake_for(vendor) as fake:
        runtime = open_run(ledger, spec_of(tasks), providers_doc(vendor, fake.url))
        run_id = runtime.run.run_id
        results = run_all(runtime)
    # A bad request fails as it would live (no call can help); an overload is tried again live.
    assert results["bad"].status == TaskStatus.FAILED
    assert results["busy"].status == TaskStatus.COMPLETED and results["busy"].output == LIVE_ANSWER
    outcomes = {(a.task_id, a.attempt): (a.outcome, a.vendor_batch_id is not None) for a in ledger.attempts(run_id)}
    assert outcomes == {
        ("bad", 1): ("bad_request", True),
        ("busy", 1): ("overloaded", True),
        ("busy", 2): ("success", False),
    }
    assert fake.live_calls == 1


def test_a_restarted_run_polls_its_vendor_batch_instead_of_submitting_again(vendor: str, ledger: Ledger) -> None:
    tasks = [{"id": "t", "type": "summarization", "prompt": "wait for me", "deadline": "12h"}]
    spec = spec_of(tasks)
    with fake_for(vendor, polls_to_end=None) as fake:
        doc = providers_doc(vendor, fake.url)
        first = open_run(ledger, spec, doc)
        run_id = first.run.run_id
        results: dict[str, NodeResult] = {}
        worker = threading.Thread(target=lambda: results.update(run_all(first)))
        worker.start()
        wait_until_submitted(ledger, run_id)
        run_stop(run_id).request(StopReason.INTERRUPTED, "test: the process stops")
        worker.join(10)
        assert results["t"].status == TaskStatus.CANCELLED
        (row,) = vendor_requests(ledger, run_id)
        assert row.state == VendorState.WAITING and fake.cancelled == []  # the vendor batch runs on
        forget_stop(run_id)
        # `show`, the run summary (`--json`) and the API say where it waits, with the vendor's batch id.
        summary = run_summary(ledger, run_id)
        assert summary.totals.waiting_in_vendor_batches == 1
        document = summary.model_dump(mode="json")
        assert document["tasks"][0]["vendor_batch"] == {
            "id": row.vendor_batch_id,
            "provider": "api",
            "state": "waiting",
            "detail": None,
        }
        assert document["totals"]["waiting_in_vendor_batches"] == 1  # tests/cli/test_render.py: how show draws it

        fake.end(row.vendor_batch_id)
        fake.polls_to_end = 0  # a batch submitted again would end too (and be counted), not hang the test
        again = run_all(open_run(ledger, spec, doc, run_id=run_id))
    assert again["t"].status == TaskStatus.COMPLETED and again["t"].output == ANSWER
    assert fake.created == 1 and fake.live_calls == 0  # polled, never submitted twice
    (row,) = vendor_requests(ledger, run_id)
    assert row.state == VendorState.DONE
    finished = run_summary(ledger, run_id).model_dump(mode="json")
    assert "waiting_in_vendor_batches" not in finished["totals"]  # only while some wait
    assert finished["tasks"][0]["vendor_batch"]["state"] == "done"


async def test_a_task_cancelled_while_waiting_leaves_the_vendor_batch_running(ledger: Ledger) -> None:
    """The run stopped (its routing cancelled) while the process lives on: the vendor batch is not cancelled, so
    the next start can collect what was paid for."""
    from batches.deferred import DeferredCalls
    from providers import AITask, AnthropicConfig, AnthropicProvider, ExecutionContext

    spec = spec_of([{"id": "t", "type": "summarization", "prompt": "p", "deadline": "12h"}])
    run_id = start_run(ledger, "t")
    with FakeAnthropicBatches(polls_to_end=None) as fake:
        config = AnthropicConfig(base_url=fake.url, api_key_env=KEY_ENV, batch=FAST)  # type: ignore[arg-type]
        provider = AnthropicProvider("api", config)
        run = ledger.get_run(run_id)
        assert run is not None
        deferred = DeferredCalls(ledger, run_id, run.started_at)
        task: AITask = spec.to_ai_task(spec.tasks[0])
        assert deferred.takes(provider, task)
        waiting = asyncio.ensure_future(deferred.call(provider, task, ExecutionContext(run_id=run_id)))
        await asyncio.to_thread(wait_until_submitted, ledger, run_id, 4.0)
        waiting.cancel()
        await asyncio.sleep(0.4)  # several polls: the poller notices nobody waits any more
        polls = fake.batches[next(iter(fake.batches))].polls
        await asyncio.sleep(0.3)
        assert fake.batches[next(iter(fake.batches))].polls == polls  # it stopped polling ...
        await deferred.aclose()
        await provider.aclose()
    assert fake.cancelled == []  # ... and left the vendor batch to finish
    (row,) = vendor_requests(ledger, run_id)
    assert row.state == VendorState.WAITING


async def test_polling_backs_off_up_to_its_cap(ledger: Ledger) -> None:
    from batches.deferred import DeferredCalls
    from providers import AnthropicConfig, AnthropicProvider, ExecutionContext

    spec = spec_of([{"id": "t", "type": "summarization", "prompt": "p", "deadline": "12h"}])
    run_id = start_run(ledger, "t")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    settings = {**FAST, "poll_initial_s": 10.0, "poll_factor": 3.0, "poll_max_s": 60.0, "gather_s": 1.0}
    with FakeAnthropicBatches(polls_to_end=5) as fake:
        provider = AnthropicProvider("api", AnthropicConfig(base_url=fake.url, api_key_env=KEY_ENV, batch=settings))  # type: ignore[arg-type]
        run = ledger.get_run(run_id)
        assert run is not None
        deferred = DeferredCalls(ledger, run_id, run.started_at, sleep=sleep)
        answer, batch_id = await deferred.call(
            provider, spec.to_ai_task(spec.tasks[0]), ExecutionContext(run_id=run_id)
        )
        await provider.aclose()
    assert getattr(answer, "text", None) == ANSWER and batch_id in fake.batches
    assert slept == [1.0, 10.0, 30.0, 60.0, 60.0, 60.0]  # the gathering window, then 10 s x3 up to 60 s


def test_a_spent_budget_submits_nothing_to_the_vendor(ledger: Ledger) -> None:
    tasks = [{"id": "t", "type": "summarization", "prompt": "p", "deadline": "12h"}]
    with FakeAnthropicBatches() as fake:
        doc = {**providers_doc("anthropic", fake.url), "budget": {"max_cost_usd_per_run": 0.000001}}
        results = run_all(open_run(ledger, spec_of(tasks), doc))
    assert results["t"].status == TaskStatus.FAILED and "budget" in (results["t"].error or "")
    assert fake.created == 0 and fake.live_calls == 0


def test_a_vendor_batch_that_cannot_be_submitted_sends_its_tasks_live(ledger: Ledger) -> None:
    from tests.fakes.fake_llm_servers import anthropic_error

    tasks = [{"id": f"t{i}", "type": "summarization", "prompt": f"p{i}", "deadline": "12h"} for i in range(2)]
    with FakeAnthropicBatches() as fake:
        fake.script(anthropic_error(500, "api_error", "Internal server error"), path="/v1/messages/batches")
        runtime = open_run(ledger, spec_of(tasks), providers_doc("anthropic", fake.url))
        run_id = runtime.run.run_id
        results = run_all(runtime)
    assert {r.output for r in results.values()} == {LIVE_ANSWER}
    assert fake.created == 0 and fake.live_calls == 2
    assert vendor_requests(ledger, run_id) == []  # nothing waits anywhere
    # Not the tasks' failure: no attempt is charged to them for the batch endpoint's trouble.
    assert [a.outcome for a in ledger.attempts(run_id)] == ["success", "success"]


def test_polling_outlasts_the_batch_endpoints_own_errors(vendor: str, ledger: Ledger) -> None:
    tasks = [{"id": "t", "type": "summarization", "prompt": "p", "deadline": "12h"}]
    with fake_for(vendor) as fake:
        fake.retrieve_errors = 3  # three 500s from GET batch, then it answers
        results = run_all(open_run(ledger, spec_of(tasks), providers_doc(vendor, fake.url)))
    assert results["t"].output == ANSWER and fake.created == 1 and fake.live_calls == 0


def test_a_batch_the_vendor_refuses_as_a_whole_goes_live(ledger: Ledger) -> None:
    # A short deadline, so a batch taken for still running ends the test by the deadline (a different detail).
    tasks = [{"id": "t", "type": "summarization", "prompt": "p", "deadline": "3s"}]
    with FakeOpenAIBatches() as fake:
        fake.fail_batches = True
        runtime = open_run(ledger, spec_of(tasks), providers_doc("openai", fake.url))
        run_id = runtime.run.run_id
        results = run_all(runtime)
    assert results["t"].output == LIVE_ANSWER and fake.created == 1 and fake.live_calls == 1
    (row,) = vendor_requests(ledger, run_id)
    assert (row.state, row.detail) == (VendorState.FELL_BACK, "vendor batch failed")
    assert [a.outcome for a in ledger.attempts(run_id)] == ["success"]


def test_a_vendor_batch_that_is_gone_sends_its_waiting_tasks_live(ledger: Ledger) -> None:
    from ledger import record_vendor_submission

    tasks = [{"id": "t", "type": "summarization", "prompt": "p"}]
    spec = spec_of(tasks, deferrable=True)  # no deadline: only the vendor's answer could end the wait
    with FakeAnthropicBatches() as fake:
        doc = providers_doc("anthropic", fake.url)
        run_id = open_run(ledger, spec, doc).run.run_id
        close_runtime(run_id)
        # An earlier start of the run submitted t to a vendor batch the vendor no longer has (archived).
        record_vendor_submission(ledger, run_id, "api", "msgbatch_archived_long_ago", {"t": "sb-1"})
        results = run_all(open_run(ledger, spec, doc, run_id=run_id))
    assert results["t"].output == LIVE_ANSWER and fake.created == 0
    (row,) = vendor_requests(ledger, run_id)
    assert (row.state, row.detail) == (VendorState.FELL_BACK, "vendor batch unreadable: bad_request")


def test_a_ledger_that_cannot_keep_the_vendor_batch_still_gets_the_answers(ledger: Ledger) -> None:
    tasks = [{"id": "t", "type": "summarization", "prompt": "p", "deadline": "12h"}]
    with FakeAnthropicBatches() as fake:
        runtime = open_run(ledger, spec_of(tasks), providers_doc("anthropic", fake.url))
        with ledger.engine.begin() as conn:  # the table refuses every write from here on
            conn.exec_driver_sql("DROP TABLE vendor_batch_requests")
        results = run_all(runtime)
    # Paid for already: collected by this process (only a restart could not have found it).
    assert results["t"].output == ANSWER and fake.created == 1 and fake.live_calls == 0


def test_a_vendor_batch_that_expires_sends_its_tasks_live(vendor: str, ledger: Ledger) -> None:
    tasks = [{"id": "t", "type": "summarization", "prompt": "p"}]
    with fake_for(vendor, polls_to_end=None) as fake:
        runtime = open_run(ledger, spec_of(tasks, deferrable=True), providers_doc(vendor, fake.url))
        run_id = runtime.run.run_id
        results: dict[str, NodeResult] = {}
        worker = threading.Thread(target=lambda: results.update(run_all(runtime)))
        worker.start()
        wait_until_submitted(ledger, run_id)
        fake.expire()  # the vendor's 24 hours pass with the request unanswered
        worker.join(10)
    assert results["t"].output == LIVE_ANSWER and fake.live_calls == 1
    (row,) = vendor_requests(ledger, run_id)
    assert (row.state, row.detail) == (VendorState.FELL_BACK, "expired")


async def test_a_task_back_from_a_long_wait_is_planned_again(ledger: Ledger) -> None:
    """Hours in a vendor batch: the live calls after it follow the providers as they are now, not the old plan."""
    from batches.deferred import DeferredCalls

    spec = spec_of([{"id": "late", "type": "summarization", "prompt": "slow batch", "deadline": "2.5s"}])
    run_id = start_run(ledger, "late")
    run = ledger.get_run(run_id)
    assert run is not None
    with FakeAnthropicBatches(polls_to_end=None) as fake:
        doc = providers_doc("anthropic", fake.url)
        config = parse_config(doc, "providers.yaml")
        router = Router(
            ProviderRegistry.from_configs(config.providers),
            config,
            deferral=DeferredCalls(ledger, run_id, run.started_at),
            health_checks=False,
        )
        routing = asyncio.ensure_future(router.route(spec.to_ai_task(spec.tasks[0]), RunInfo(run_id=run_id)))
        await asyncio.to_thread(wait_until_submitted, ledger, run_id)
        # While it waits, a provider that comes first is added (as the API's PUT /providers/{id} does).
        fresh = parse_config({"providers": {"fresh": {"type": "local_mock", "priority": 0}}}, "overlay.yaml")
        router.registry.add("fresh", fresh.providers["fresh"])
        router.sync_providers()
        result = await routing
        await router.registry.aclose()
    assert result.status == TaskStatus.COMPLETED
    assert result.provider_id == "fresh" and fake.live_calls == 0
