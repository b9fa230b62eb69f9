"""A run's summary is the `--json` object: its optional keys appear exactly where the CLI contract puts them."""

from __future__ import annotations

import json

from batches import run_summary
from ledger import AttemptRecord, Ledger, NewTask, RouteDecision, TaskStatus
from providers import utc_now


def _recorded_run(ledger: Ledger) -> str:
    run_id, _ = ledger.start_or_resume_run(
        batch_name="b",
        batch_hash="h",
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id=t, task_type="code_review", priority="normal") for t in ("a", "b")],
    )
    now = utc_now()
    attempts = [
        AttemptRecord(
            run_id=run_id,
            task_id="a",
            provider_id=provider,
            task_type="code_review",
            attempt=n,
            outcome=outcome,
            started_at=now,
            finished_at=now,
            cost_usd=cost,
        )
        for n, (provider, outcome, cost) in enumerate([("flaky", "unavailable", 0.0), ("steady", "success", 0.25)], 1)
    ]
    decision = RouteDecision(strategy="priority_based", order=("flaky", "steady"), chosen="steady")
    ledger.finish_task(
        run_id, "a", status=TaskStatus.COMPLETED, provider_id="steady", decision=decision, attempts=attempts
    )
    ledger.finish_task(run_id, "b", status=TaskStatus.SKIPPED, error="skipped: upstream not completed")
    return run_id


def test_decisions_only_when_explained_and_the_ui_link_only_when_given(sqlite_url: str) -> None:
    ledger = Ledger(url=sqlite_url)
    run_id = _recorded_run(ledger)
    plain = json.loads(json.dumps(run_summary(ledger, run_id).model_dump()))
    assert all("decision" not in task for task in plain["tasks"]) and "ui_url" not in plain["run"]
    explained = json.loads(json.dumps(run_summary(ledger, run_id, explain=True).with_ui_url(None).model_dump()))
    assert [t["decision"] for t in explained["tasks"]] == [
        {
            "strategy": "priority_based",
            "candidates": [],
            "skipped": {},
            "order": ["flaky", "steady"],
            "chosen": "steady",
        },
        None,  # a task never routed has no decision, and says so
    ]
    assert list(explained["run"]) == [
        "id",
        "name",
        "flow_run_id",
        "status",
        "strategy",
        "team",
        "started_at",
        "finished_at",
        "ui_url",
    ]
    assert explained["run"]["ui_url"] is None
    totals = explained["totals"]
    assert (totals["completed"], totals["skipped"], totals["failovers"], totals["attempts"]) == (1, 1, 1, 2)
    assert totals["cost_usd"] == 0.25
    assert list(totals)[-8:] == [
        "cost_usd",
        "failovers",
        "rotations",
        "quota_failures",
        "attempts",
        "cache_hits",
        "cache_savings_usd",
        "spooled_rows",
    ]
    assert totals["quota_failures"] == 0


def test_quota_failures_are_counted_apart_from_other_failures(sqlite_url: str) -> None:
    from ledger import QUOTA_REFUSED

    ledger = Ledger(url=sqlite_url)
    ids = ("rate", "rate2", "quota", "down", "refused", "budget", "ok")
    run_id, _ = ledger.start_or_resume_run(
        batch_name="q",
        batch_hash="q",
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id=t, task_type="code_review", priority="normal") for t in ids],
    )
    now = utc_now()

    def attempts(task_id: str, *outcomes: str) -> list[AttemptRecord]:
        return [
            AttemptRecord(
                run_id=run_id,
                task_id=task_id,
                provider_id=f"p{n}",
                task_type="code_review",
                attempt=n,
                outcome=outcome,
                started_at=now,
                finished_at=now,
            )
            for n, outcome in enumerate(outcomes, 1)
        ]

    failed = TaskStatus.FAILED
    ledger.finish_task(run_id, "rate", status=failed, attempts=attempts("rate", "unavailable", "rate_limited"))
    ledger.finish_task(run_id, "rate2", status=failed, attempts=attempts("rate2", "timeout", "rate_limited"))
    ledger.finish_task(run_id, "quota", status=failed, attempts=attempts("quota", "quota_exhausted"))
    ledger.finish_task(run_id, "down", status=failed, attempts=attempts("down", "rate_limited", "unavailable"))
    ledger.finish_task(run_id, "refused", status=failed, error=f"{QUOTA_REFUSED} for task type 'code_review' (p: x)")
    ledger.finish_task(run_id, "budget", status=failed, error="no provider can take task type 'code_review' now")
    ledger.finish_task(run_id, "ok", status=TaskStatus.COMPLETED, provider_id="p1", attempts=attempts("ok", "success"))
    totals = run_summary(ledger, run_id).totals
    # rate, rate2 and quota by their last outcome, refused by every provider skipped; not down (its last outcome
    # is unavailable) nor budget.
    assert (totals.failed, totals.quota_failures) == (6, 4)
