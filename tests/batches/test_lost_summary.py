"""A run whose ledger went away is still printed task by task: each spec task with the newest of what this
process knows (its node's result, else its spooled final state or successful attempt, else its state at the run's
start), and the attempts waiting in the spool."""

from __future__ import annotations

from batches import KnownState, NodeResult, RunHeader, parse_spec, summary_without_ledger
from ledger import AttemptRecord, RunStatus, SpoolItem, TaskOutcome, TaskState, TaskStatus
from providers import utc_now

SPEC = parse_spec(
    {
        "name": "lost",
        "tasks": [
            {"id": "answered", "type": "code_review", "prompt": "p"},
            {"id": "earlier", "type": "code_review", "prompt": "p"},
            {"id": "spooled", "type": "code_review", "prompt": "p"},
            {"id": "cancelled", "type": "code_review", "prompt": "p"},
            {"id": "unreached", "type": "summarization", "prompt": "p", "depends_on": ["cancelled"]},
        ],
    },
    "spec.yaml",
)


def _attempt(task_id: str, attempt: int, outcome: str, cost: float) -> AttemptRecord:
    now = utc_now()
    return AttemptRecord(
        run_id="r1", task_id=task_id, provider_id="steady", task_type="code_review", attempt=attempt,
        outcome=outcome, started_at=now, finished_at=now, cost_usd=cost, output="ok" if outcome == "success" else None,
    )  # fmt: skip


def _state(task_id: str, status: TaskStatus, output: str | None = None) -> TaskState:
    return TaskState(
        run_id="r1", task_id=task_id, task_type="code_review", priority="normal", team=None, status=status,
        provider_id="steady" if output else None, output=output, error=None, decision=None, position=0,
    )  # fmt: skip


def test_every_task_is_listed_with_the_newest_known_state_and_its_spooled_attempts() -> None:
    memory = KnownState(
        states={
            "answered": _state("answered", TaskStatus.PENDING),
            "earlier": _state("earlier", TaskStatus.COMPLETED, output="from before"),
            "spooled": _state("spooled", TaskStatus.PENDING),
            "cancelled": _state("cancelled", TaskStatus.PENDING),
            "unreached": _state("unreached", TaskStatus.PENDING),
        },
        successes={},
        last_attempts={},
        results={
            "answered": NodeResult("answered", TaskStatus.COMPLETED, output="the answer", provider="steady"),
            "cancelled": NodeResult("cancelled", TaskStatus.CANCELLED, error="the ledger cannot be reached"),
        },
    )
    spooled: list[SpoolItem] = [
        _attempt("answered", 2, "success", 0.5),
        _attempt("answered", 1, "timeout", 0.0),
        _attempt("spooled", 1, "success", 0.25),
        ("r1", TaskOutcome(task_id="spooled", status=TaskStatus.COMPLETED, provider_id="steady", output="ok")),
    ]
    header = RunHeader(id="r1", name="lost", status=RunStatus.RUNNING, started_at=utc_now().isoformat())
    summary = summary_without_ledger(SPEC, header, memory, spooled)
    tasks = {t.id: t for t in summary.tasks}
    assert [t.id for t in summary.tasks] == [t.id for t in SPEC.tasks]
    assert {i: (t.status, t.provider, t.output) for i, t in tasks.items()} == {
        "answered": (TaskStatus.COMPLETED, "steady", "the answer"),
        "earlier": (TaskStatus.COMPLETED, "steady", "from before"),
        "spooled": (TaskStatus.COMPLETED, "steady", "ok"),
        "cancelled": (TaskStatus.CANCELLED, None, None),
        "unreached": (TaskStatus.PENDING, None, None),
    }
    assert [a.attempt for a in tasks["answered"].attempts] == [1, 2] and tasks["answered"].cost_usd == 0.5
    assert tasks["cancelled"].error == "the ledger cannot be reached"
    totals = summary.totals
    assert (totals.completed, totals.cancelled, totals.pending) == (3, 1, 1)
    assert (totals.attempts, totals.cost_usd, totals.spooled_rows) == (3, 0.75, 4)
    assert summary.run.status == RunStatus.INTERRUPTED


def test_without_the_runs_memory_the_spool_and_the_spec_still_list_every_task() -> None:
    spooled: list[SpoolItem] = [
        _attempt("spooled", 1, "success", 0.25),
        ("r1", TaskOutcome(task_id="spooled", status=TaskStatus.COMPLETED, provider_id="steady", output="ok")),
        _attempt("answered", 1, "success", 0.5),  # its final state was never written
    ]
    header = RunHeader(id="r1", name="lost", status=RunStatus.INTERRUPTED, started_at=utc_now().isoformat())
    summary = summary_without_ledger(SPEC, header, None, spooled)
    assert {t.id: (t.status, t.provider, t.output) for t in summary.tasks} == {
        **dict.fromkeys(["earlier", "cancelled", "unreached"], (TaskStatus.PENDING, None, None)),
        "spooled": (TaskStatus.COMPLETED, "steady", "ok"),
        "answered": (TaskStatus.COMPLETED, "steady", "ok"),
    }
