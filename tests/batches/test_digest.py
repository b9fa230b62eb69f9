"""A large run's digest: tasks grouped by status and provider (counts, cost, p50/p95 latency, failovers), the
failed and skipped ones listed up to a limit, and the `show` filters."""

from __future__ import annotations

from batches import (
    DIGEST_ABOVE,
    AttemptSummary,
    RunHeader,
    RunSummary,
    RunTotals,
    TaskSummary,
    digest,
    needs_digest,
    percentile,
    select_tasks,
)
from batches.digest import OTHERS, REASON_CHARS


def _task(
    i: int, status: str, attempts: list[tuple[str, str]], *, latency: float = 10.0, **extra: object
) -> TaskSummary:
    tried = [AttemptSummary(provider=p, outcome=o, cost_usd=0.5 if o == "success" else 0.25) for p, o in attempts]
    return TaskSummary(
        id=f"t{i}",
        type=str(extra.pop("type", "code_review")),
        status=status,  # type: ignore[arg-type]
        provider=attempts[-1][0] if status == "completed" else None,
        attempts=tried,
        cost_usd=sum(a.cost_usd for a in tried),
        latency_ms=latency,
        **extra,  # type: ignore[arg-type]
    )


def _summary(tasks: list[TaskSummary]) -> RunSummary:
    header = RunHeader(id="r1", name="big", status="failed", started_at="2026-01-01T00:00:00+00:00")  # type: ignore[arg-type]
    return RunSummary(run=header, tasks=tasks, totals=RunTotals())


def test_groups_count_cost_latency_percentiles_and_failovers_per_status_and_provider() -> None:
    tasks = [_task(i, "completed", [("a", "success")], latency=float(i + 1)) for i in range(100)]
    tasks += [_task(100 + i, "completed", [("a", "unavailable"), ("b", "success")], latency=200.0) for i in range(5)]
    tasks += [_task(200, "failed", [("a", "timeout"), ("b", "timeout")], error="all providers failed")]
    tasks += [_task(300, "skipped", [], error="skipped: upstream not completed (t200 failed)")]
    d = digest(_summary(tasks))
    rows = {(g.status, g.provider): g for g in d.groups}
    assert [(g.status, g.provider, g.tasks) for g in d.groups] == [
        ("completed", "a", 100),
        ("completed", "b", 5),
        ("failed", "b", 1),  # not answered: grouped under the last provider tried
        ("skipped", "-", 1),
    ]
    completed_a = rows["completed", "a"]
    assert completed_a.cost_usd == 50.0
    assert (completed_a.p50_ms, completed_a.p95_ms) == (50.0, 95.0)  # nearest rank over 1..100
    assert completed_a.failovers == 0
    assert rows["completed", "b"].failovers == 5 and rows["completed", "b"].cost_usd == 5 * 0.75
    assert rows["failed", "b"].failovers == 1
    assert (rows["skipped", "-"].p50_ms, rows["skipped", "-"].p95_ms) == (None, None)  # never called
    assert [(t.id, t.status, t.reason) for t in d.listed] == [
        ("t200", "failed", "all providers failed"),
        ("t300", "skipped", "skipped: upstream not completed (t200 failed)"),
    ]
    assert d.unlisted == 0 and d.problems == 2


def test_lists_failed_before_skipped_up_to_the_limit_and_counts_the_rest() -> None:
    tasks = [_task(i, "skipped", [], error="skipped: upstream") for i in range(30)]
    tasks += [_task(100 + i, "failed", [("a", "bad_request")]) for i in range(30)]
    d = digest(_summary(tasks), listed=10)
    assert [t.status for t in d.listed] == ["failed"] * 10
    assert d.unlisted == 50 and d.problems == 60
    # A failed task without an error message is explained by its last attempt.
    assert d.listed[0].reason == "a: bad_request"


def test_a_reason_is_one_line_and_cut_to_its_limit() -> None:
    long = "line one\nline two " + "x" * 500
    (listed,) = digest(_summary([_task(1, "failed", [("a", "timeout")], error=long)])).listed
    assert "\n" not in listed.reason and len(listed.reason) == REASON_CHARS
    assert listed.reason.startswith("line one line two") and listed.reason.endswith("…")


def test_many_providers_are_folded_into_one_row_past_the_group_limit() -> None:
    tasks = [_task(i, "completed", [(f"p{i:02d}", "success")]) for i in range(20)]
    d = digest(_summary(tasks), max_groups=5)
    assert len(d.groups) == 5
    assert (d.groups[-1].status, d.groups[-1].provider, d.groups[-1].tasks) == (OTHERS, OTHERS, 16)
    assert sum(g.tasks for g in d.groups) == 20


def test_the_digest_starts_above_its_documented_size() -> None:
    assert not needs_digest(DIGEST_ABOVE)
    assert needs_digest(DIGEST_ABOVE + 1)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == 4.0


def test_select_tasks_by_status_provider_and_type_keeps_the_run_totals() -> None:
    tasks = [
        _task(1, "completed", [("a", "success")]),
        _task(2, "completed", [("a", "unavailable"), ("b", "success")], type="bug_fix"),
        _task(3, "failed", [("b", "timeout")]),
        _task(4, "skipped", []),
    ]
    summary = _summary(tasks).model_copy(update={"totals": RunTotals(completed=2, failed=1, skipped=1)})
    ids = lambda s: [t.id for t in s.tasks]  # noqa: E731
    assert ids(select_tasks(summary)) == ["t1", "t2", "t3", "t4"]
    assert ids(select_tasks(summary, statuses=["failed", "skipped"])) == ["t3", "t4"]
    assert ids(select_tasks(summary, providers=["a"])) == ["t1", "t2"]  # t2 tried a, then b answered
    assert ids(select_tasks(summary, providers=["b"])) == ["t2", "t3"]
    assert ids(select_tasks(summary, types=["bug_fix"])) == ["t2"]
    assert ids(select_tasks(summary, statuses=["completed"], providers=["b"])) == ["t2"]
    assert select_tasks(summary, statuses=["failed"]).totals == summary.totals
