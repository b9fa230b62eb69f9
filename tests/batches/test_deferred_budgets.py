"""Budgets count a request sent to a vendor batch from the moment it is handed over: at its batch-price estimate
while it waits (in this process, and held in the shared store for every other one), then at what the vendor
charged. Work that comes back unanswered or never reached the vendor gives the hold back; work the vendor has
keeps it when the run stops, and a resumed run does not hold it twice. The router, the real DeferredCalls, the
real Anthropic provider against the Message Batches stand-in, and the shared store over the ledger's database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from batches import parse_spec
from batches.deferred import DeferredCalls
from ledger import FOREVER, UTC_DAY, Ledger, LimitStore, NewTask, TaskStatus, vendor_requests
from providers import AITask
from routing import ProviderRegistry, RoutedResult, Router, RunInfo, SharedLimits, parse_config
from tests.fakes.fake_batch_apis import ANSWER, LIVE_ANSWER, FakeAnthropicBatches

KEY_ENV = "SWITCHBOARD_TEST_BATCH_KEY"
FAST = {"gather_s": 0.05, "poll_initial_s": 0.02, "poll_max_s": 0.1, "min_wait_s": 1.0, "live_margin_s": 1.0}
TEAM = "search"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-0123456789abcdef")


def _doc(
    url: str, *, budget: dict[str, float], batch: dict[str, Any] | None = None, team_cap: float = 100.0
) -> dict[str, Any]:
    provider = {"type": "anthropic", "base_url": url, "api_key_env": KEY_ENV, "batch": batch or FAST}
    return {
        "strategy": "priority_based",
        "budget": budget,
        "teams": {TEAM: {"max_cost_usd_per_day": team_cap}},
        "providers": {"api": provider},
    }


def _task(task_id: str, deadline: str | None = "12h") -> AITask:
    fields: dict[str, Any] = {"id": task_id, "type": "summarization", "prompt": f"Summarize {task_id}"}
    if deadline is not None:
        fields["deadline"] = deadline
    spec = parse_spec({"name": "deferred", "tasks": [fields]}, "spec.yaml")
    return spec.to_ai_task(spec.tasks[0])


def _run(ledger: Ledger, *task_ids: str) -> str:
    run_id, _ = ledger.start_or_resume_run(
        batch_name="deferred", batch_hash="h", team=TEAM, strategy="priority_based",
        tasks=[NewTask(task_id=t, task_type="summarization", priority="normal") for t in task_ids],
    )  # fmt: skip
    return run_id


class Process:
    """One routing process: its router, its own store connection (owner) and its run's vendor batch work."""

    def __init__(self, ledger: Ledger, run_id: str, doc: dict[str, Any], *, owner: str, shared: bool = True):
        config = parse_config(doc, "providers.yaml")
        self.run_id = run_id
        self.shared = SharedLimits(LimitStore(ledger.engine, owner=owner), refresh_s=0.05) if shared else None
        run = ledger.get_run(run_id)
        assert run is not None
        self.deferred = DeferredCalls(ledger, run_id, run.started_at)
        self.router = Router(
            ProviderRegistry.from_configs(config.providers),
            config,
            shared=self.shared,
            deferral=self.deferred,
            health_checks=False,
        )
        self.provider = self.router.registry.get("api")

    def route(self, task: AITask) -> asyncio.Future[RoutedResult]:
        return asyncio.ensure_future(self.router.route(task, RunInfo(run_id=self.run_id, team=TEAM)))

    def batch_estimate(self, task: AITask) -> float:
        return self.provider.estimate_cost(task).cost_usd * 0.5

    async def close(self) -> None:
        await self.deferred.aclose()
        await self.router.registry.aclose()
        if self.shared is not None:
            self.shared.close()


async def _live_estimate(ledger: Ledger, run_id: str, url: str) -> float:
    """What a live call of the test's task is estimated at: budgets below are set around it."""
    probe = Process(ledger, run_id, _doc(url, budget={}), owner="probe", shared=False)
    estimate = probe.provider.estimate_cost(_task("live", deadline=None)).cost_usd
    await probe.close()
    return estimate


def _budget_scopes(run_id: str) -> list[str]:
    return ["budget:day", f"budget:run:{run_id}", f"budget:team:{TEAM}"]


def _cost(store: LimitStore, scope: str) -> tuple[float, float]:
    """(settled, reserved) cost in `scope`: today, or a run's whole life."""
    usage = store.usage(scope, FOREVER if scope.startswith("budget:run:") else UTC_DAY)
    return usage[2], usage[5]


async def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_waiting_request_holds_its_batch_estimate_in_every_shared_budget_then_its_charge(
    ledger: Ledger,
) -> None:
    run_id = _run(ledger, "t")
    store = LimitStore(ledger.engine, owner="reader")
    budget = {"max_cost_usd_per_day": 100.0, "max_cost_usd_per_run": 100.0}
    with FakeAnthropicBatches(polls_to_end=None) as fake:
        one = Process(ledger, run_id, _doc(fake.url, budget=budget), owner="one")
        task = _task("t")
        waiting = one.route(task)
        await _until(lambda: bool(vendor_requests(ledger, run_id)))
        estimate = one.batch_estimate(task)
        assert estimate > 0
        for scope in _budget_scopes(run_id):
            assert _cost(store, scope) == (0.0, pytest.approx(estimate)), scope
        # It lives as long as the vendor's window, not a live call's timeout: it must outlive hours of waiting.
        day_later = LimitStore(ledger.engine, owner="later", clock=lambda: store.now() + 24 * 3600)
        assert day_later.expire() == 0 and store.in_flight() == 1
        fake.end()
        result = await waiting
        await one.close()
    assert result.status == TaskStatus.COMPLETED and result.response is not None
    assert result.response.text == ANSWER
    (attempt,) = result.attempts
    assert 0 < attempt.cost_usd < estimate * 2  # the batch price, not the list price
    for scope in _budget_scopes(run_id):
        assert _cost(store, scope) == (pytest.approx(attempt.cost_usd), 0.0), scope
    assert store.in_flight() == 0


async def test_another_process_cannot_spend_what_a_waiting_request_holds(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Money held by calls in flight may settle lower, so a refused call waits for it first; not for 30 s here.
    monkeypatch.setattr("routing.admission.SHARED_WAIT_S", 0.3)
    run_id = _run(ledger, "deferred", "live")
    with FakeAnthropicBatches(polls_to_end=None) as fake:
        live_estimate = await _live_estimate(ledger, run_id, fake.url)
        # Room for the live call alone (1.0) or the waiting request alone (0.5), not both (1.5).
        budget = {"max_cost_usd_per_day": live_estimate * 1.2}
        one = Process(ledger, run_id, _doc(fake.url, budget=budget), owner="one")
        two = Process(ledger, run_id, _doc(fake.url, budget=budget), owner="two")
        waiting = one.route(_task("deferred"))
        await _until(lambda: bool(vendor_requests(ledger, run_id)))
        refused = await two.route(_task("live", deadline=None))
        fake.end()
        answered = await waiting
        await one.close()
        await two.close()
    assert answered.status == TaskStatus.COMPLETED
    assert refused.status == TaskStatus.FAILED and refused.outcome == "budget_exceeded"
    assert fake.live_calls == 0


async def test_a_waiting_request_counts_in_its_own_process_budget_without_a_shared_store(ledger: Ledger) -> None:
    run_id = _run(ledger, "deferred", "live")
    with FakeAnthropicBatches(polls_to_end=None) as fake:
        live_estimate = await _live_estimate(ledger, run_id, fake.url)
        budget = {"max_cost_usd_per_run": live_estimate * 1.2}
        one = Process(ledger, run_id, _doc(fake.url, budget=budget), owner="one", shared=False)
        waiting = one.route(_task("deferred"))
        await _until(lambda: bool(vendor_requests(ledger, run_id)))
        refused = await one.route(_task("live", deadline=None))
        fake.end()
        answered = await waiting
        spent = one.router.budget.run_spent(run_id)
        await one.close()
    assert refused.status == TaskStatus.FAILED and refused.outcome == "budget_exceeded"
    assert answered.status == TaskStatus.COMPLETED and fake.live_calls == 0
    assert spent == pytest.approx(answered.attempts[0].cost_usd)  # the estimate replaced by the charge


async def test_a_request_taken_back_for_a_live_call_gives_its_hold_back(ledger: Ledger) -> None:
    run_id = _run(ledger, "late")
    store = LimitStore(ledger.engine, owner="reader")
    with FakeAnthropicBatches(polls_to_end=None) as fake:
        one = Process(ledger, run_id, _doc(fake.url, budget={"max_cost_usd_per_day": 100.0}), owner="one")
        result = await one.route(_task("late", deadline="2.5s"))
        await _until(lambda: store.in_flight() == 0)
        await one.close()
    assert result.status == TaskStatus.COMPLETED and result.response is not None
    assert result.response.text == LIVE_ANSWER
    live = [a for a in result.attempts if a.vendor_batch_id is None]
    assert len(live) == 1 and len(result.attempts) == 1
    # Only the live call counts: the request the vendor never answered was given back.
    assert _cost(store, "budget:day") == (pytest.approx(live[0].cost_usd), 0.0)


async def test_a_stopped_run_keeps_the_hold_of_a_submitted_request_and_a_resumed_run_does_not_hold_it_twice(
    ledger: Ledger,
) -> None:
    run_id = _run(ledger, "t")
    store = LimitStore(ledger.engine, owner="reader")
    doc_budget = {"max_cost_usd_per_day": 100.0}
    with FakeAnthropicBatches(polls_to_end=None) as fake:
        first = Process(ledger, run_id, _doc(fake.url, budget=doc_budget), owner="first")
        task = _task("t")
        estimate = first.batch_estimate(task)
        waiting = first.route(task)
        await _until(lambda: bool(vendor_requests(ledger, run_id)))
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await first.close()
        # The vendor answers (and charges) it all the same: the budgets keep counting it.
        assert _cost(store, "budget:day") == (0.0, pytest.approx(estimate))
        again = Process(ledger, run_id, _doc(fake.url, budget=doc_budget), owner="again")
        resumed = again.route(task)
        await asyncio.sleep(0.3)
        assert store.in_flight() == 1  # polled, not held again
        fake.end()
        result = await resumed
        await again.close()
    assert result.status == TaskStatus.COMPLETED and fake.created == 1
    # Still the first start's hold, which expires charged at its estimate; never the estimate and the charge.
    assert _cost(store, "budget:day") == (0.0, pytest.approx(estimate))


async def test_a_request_stopped_before_it_reached_the_vendor_gives_its_hold_back(ledger: Ledger) -> None:
    run_id = _run(ledger, "t")
    store = LimitStore(ledger.engine, owner="reader")
    with FakeAnthropicBatches(polls_to_end=None) as fake:
        slow_gather = {**FAST, "gather_s": 30.0}
        one = Process(
            ledger, run_id, _doc(fake.url, budget={"max_cost_usd_per_day": 100.0}, batch=slow_gather), owner="one"
        )
        waiting = one.route(_task("t"))
        await _until(lambda: _cost(store, "budget:day")[1] > 0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await _until(lambda: store.in_flight() == 0)
        await one.close()
    assert fake.created == 0
    assert _cost(store, "budget:day") == (0.0, 0.0)


async def test_a_request_a_shared_budget_has_no_room_for_is_not_submitted(ledger: Ledger) -> None:
    # Only the store knows team budgets: this process's own guard lets the request through, the store does not.
    run_id = _run(ledger, "t")
    store = LimitStore(ledger.engine, owner="reader")
    with FakeAnthropicBatches(polls_to_end=1) as fake:  # a batch sent by mistake ends: the test fails, not hangs
        live_estimate = await _live_estimate(ledger, run_id, fake.url)
        doc = _doc(fake.url, budget={"max_cost_usd_per_day": 100.0}, team_cap=live_estimate * 0.25)
        one = Process(ledger, run_id, doc, owner="one")
        result = await one.route(_task("t"))
        await one.close()
    assert result.status == TaskStatus.FAILED and result.outcome == "budget_exceeded"
    assert fake.created == 0 and fake.live_calls == 0
    assert _cost(store, "budget:day") == (0.0, 0.0)  # nothing held: the local charge was given back too
    assert one.router.budget.run_spent(run_id) == 0.0
