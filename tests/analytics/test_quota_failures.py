"""The report counts quota failures apart, by the run summary's rule (ledger.quota_failures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from analytics import ReportWindow, build_report
from ledger import QUOTA_REFUSED, AttemptRecord, Ledger, NewTask, TaskStatus


def test_the_report_counts_quota_failures_by_the_run_summarys_rule(sqlite_url: str) -> None:
    ledger = Ledger(url=sqlite_url)
    ids = ("rate", "retried", "down", "refused", "other", "ok")
    run_id, _ = ledger.start_or_resume_run(
        batch_name="q",
        batch_hash="q",
        team=None,
        strategy="priority_based",
        tasks=[NewTask(task_id=t, task_type="code_review", priority="normal") for t in ids],
    )
    now = datetime.now(UTC)

    def attempts(task_id: str, *outcomes: str) -> list[AttemptRecord]:
        return [
            AttemptRecord(
                run_id=run_id,
                task_id=task_id,
                provider_id="p",
                task_type="code_review",
                attempt=n,
                outcome=outcome,
                started_at=now - timedelta(minutes=5),
                finished_at=now - timedelta(minutes=5),
            )
            for n, outcome in enumerate(outcomes, 1)
        ]

    failed = TaskStatus.FAILED
    ledger.finish_task(run_id, "rate", status=failed, attempts=attempts("rate", "unavailable", "rate_limited"))
    # A rate limit, then a success: not a failure at all.
    ledger.finish_task(
        run_id,
        "retried",
        status=TaskStatus.COMPLETED,
        provider_id="p",
        attempts=attempts("retried", "rate_limited", "success"),
    )
    ledger.finish_task(run_id, "down", status=failed, attempts=attempts("down", "quota_exhausted", "unavailable"))
    ledger.finish_task(run_id, "refused", status=failed, error=f"{QUOTA_REFUSED} for task type 'code_review' (p: x)")
    ledger.finish_task(run_id, "other", status=failed, error="no provider can take task type 'code_review' now")
    ledger.finish_task(run_id, "ok", status=TaskStatus.COMPLETED, provider_id="p", attempts=attempts("ok", "success"))
    report = build_report(ledger.engine, ReportWindow(now - timedelta(hours=1), now + timedelta(minutes=1)))
    assert report.totals["quota_failures"] == 2  # rate (last outcome) and refused (every provider skipped)
    ledger.close()
