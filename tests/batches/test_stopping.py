"""Why a run stops, decided in one place: the first reason wins, the run's engine-loop work is cancelled and
new work refused, other runs go on, and the ledger ends the run with its unfinished tasks cancelled."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

from batches import StopReason, end_stopped_run, forget_stop, run_stop
from ledger import Ledger, NewTask, RunStatus, TaskStatus
from routing import engine_loop


async def _guarded(run_id: str, started: asyncio.Event | None = None) -> str:
    this = asyncio.current_task()
    assert this is not None
    with run_stop(run_id).guarding(this):
        if started is not None:
            started.set()
        await asyncio.sleep(30)
    return "finished"


def _submit(run_id: str) -> concurrent.futures.Future[str]:
    loop = engine_loop()
    started = asyncio.Event()

    async def go() -> str:
        return await _guarded(run_id, started)

    future = loop.submit(go())
    asyncio.run_coroutine_threadsafe(started.wait(), loop.loop).result(5)
    return future


def test_a_stop_cancels_the_run_s_work_refuses_new_work_and_leaves_other_runs_alone() -> None:
    forget_stop("run-a"), forget_stop("run-b")
    mine, other = _submit("run-a"), _submit("run-b")
    assert run_stop("run-a").request(StopReason.CANCELLED, "flow run cancelled in Prefect")
    with pytest.raises(concurrent.futures.CancelledError):
        mine.result(5)
    assert run_stop("run-a").wait_idle(5)
    assert not other.done()  # another run in the same process goes on
    later = engine_loop().submit(_guarded("run-a"))
    with pytest.raises(concurrent.futures.CancelledError):  # refused: no new work once stopped
        later.result(5)
    run_stop("run-b").request(StopReason.INTERRUPTED, "test over")
    with pytest.raises(concurrent.futures.CancelledError):
        other.result(5)
    forget_stop("run-a"), forget_stop("run-b")


def test_the_first_reason_wins_and_says_when_it_took_effect() -> None:
    forget_stop("run-c")
    stop = run_stop("run-c")
    assert stop.request_made is None and not stop.wait(0)
    assert stop.request(StopReason.CANCELLED, "flow run cancelled in Prefect")
    assert not stop.request(StopReason.INTERRUPTED, "Ctrl-C")
    made = stop.request_made
    assert made is not None and made.reason == StopReason.CANCELLED and stop.wait(0)
    assert made.task_error == "cancelled (flow run cancelled in Prefect)"
    forget_stop("run-c")
    assert run_stop("run-c").request_made is None  # a resumed run starts with a fresh stop


@pytest.mark.parametrize(
    ("reason", "status"), [(StopReason.CANCELLED, RunStatus.CANCELLED), (StopReason.INTERRUPTED, RunStatus.INTERRUPTED)]
)
def test_a_stopped_run_ends_with_its_unfinished_tasks_cancelled(
    sqlite_url: str, reason: StopReason, status: RunStatus
) -> None:
    ledger = Ledger(url=sqlite_url)
    run_id, _ = ledger.start_or_resume_run(
        batch_name="b",
        batch_hash="h",
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id=t, task_type="code_review", priority="normal") for t in ("a", "b")],
    )
    ledger.finish_task(run_id, "a", status=TaskStatus.COMPLETED, provider_id="mock", output="ok")
    forget_stop(run_id)
    stop = run_stop(run_id)
    stop.request(reason, "why")
    request = stop.request_made
    assert request is not None
    assert end_stopped_run(ledger, run_id, request) == status
    states = ledger.task_states(run_id)
    assert (states["a"].status, states["b"].status) == (TaskStatus.COMPLETED, TaskStatus.CANCELLED)
    assert states["b"].error == "cancelled (why)"
    assert ledger.get_run(run_id).status == status  # type: ignore[union-attr]
    forget_stop(run_id)
