"""What a call was charged and its list price, kept apart: on attempts, for quota windows, in pruned totals, and
across migration 0008 and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select, text

from ledger import AttemptRecord, Ledger, NewTask, UsageTotal, prune
from ledger.models import Run
from ledger.schema import downgrade_schema, schema_engine, upgrade_schema
from providers import TokenUsage

WHEN = datetime(2026, 10, 1, 9, tzinfo=UTC)


def _attempts(run_id: str) -> list[AttemptRecord]:
    common = {"run_id": run_id, "provider_id": "claude", "task_type": "code_review", "outcome": "success"}
    return [
        # On a subscription login: charged nothing, 0.30 at list price.
        AttemptRecord(task_id="a", attempt=1, started_at=WHEN, finished_at=WHEN, subscription="login",
                      usage=TokenUsage(input=100, output=10), cost_usd=0.0, list_price_usd=0.3, **common),
        # Billed to a key: charged its list price (kept once).
        AttemptRecord(task_id="b", attempt=1, started_at=WHEN, finished_at=WHEN, subscription="key",
                      usage=TokenUsage(input=100, output=10), cost_usd=0.2, **common),
    ]  # fmt: skip


def _recorded_run(ledger: Ledger) -> str:
    run_id, _ = ledger.start_or_resume_run(
        batch_name="b", batch_hash="h", team=None, strategy="priority_based", fresh=True,
        tasks=[NewTask(task_id=t, task_type="code_review", priority="normal") for t in ("a", "b")],
    )  # fmt: skip
    attempts = _attempts(run_id)
    for task in ("a", "b"):
        mine = [a for a in attempts if a.task_id == task]
        ledger.finish_task(run_id, task, status="completed", provider_id="claude", output="ok", attempts=mine)
    return run_id


def test_an_attempt_keeps_what_it_was_charged_and_its_list_price(any_ledger: Ledger) -> None:
    run_id = _recorded_run(any_ledger)
    login, key = any_ledger.attempts(run_id)
    assert (login.cost_usd, login.list_price_usd, login.list_price) == (0.0, 0.3, 0.3)
    assert (key.cost_usd, key.list_price_usd, key.list_price) == (0.2, None, 0.2)
    assert any_ledger.run_cost(run_id) == pytest.approx(0.2)  # what budgets resume from: the charged money


def test_quota_windows_are_restored_at_list_price(any_ledger: Ledger) -> None:
    _recorded_run(any_ledger)
    points = any_ledger.usage_since(WHEN - timedelta(hours=1))
    assert sorted((p.subscription, p.cost_usd) for p in points) == [("key", 0.2), ("login", 0.3)]


def test_pruned_totals_keep_the_list_price(any_ledger: Ledger) -> None:
    run_id = _recorded_run(any_ledger)
    engine = any_ledger.engine
    with engine.begin() as conn:
        conn.execute(Run.__table__.update().where(Run.run_id == run_id).values(finished_at=WHEN))
    prune(engine, WHEN + timedelta(days=1))
    with engine.connect() as conn:
        rows = conn.execute(select(UsageTotal.subscription, UsageTotal.cost_usd, UsageTotal.list_price_usd)).all()
    assert sorted(tuple(r) for r in rows) == [("key", 0.2, 0.2), ("login", 0.0, 0.3)]


def test_migration_0008_adds_the_list_price_and_its_downgrade_removes_it(sqlite_url: str) -> None:
    engine = schema_engine(sqlite_url)

    def columns(table: str) -> set[str]:
        engine.dispose()  # a fresh connection sees the changed schema
        return {c["name"] for c in inspect(engine).get_columns(table)}

    upgrade_schema(engine, "0007")
    assert "list_price_usd" not in columns("provider_usage") | columns("usage_totals")
    upgrade_schema(engine, "0008")
    assert "list_price_usd" in columns("provider_usage") and "list_price_usd" in columns("usage_totals")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (run_id, batch_name, batch_hash, status, strategy, started_at) "
                "VALUES ('r1', 'b', 'h', 'completed', 'priority_based', CURRENT_TIMESTAMP)"
            )
        )
    downgrade_schema(engine, "0007")
    assert "list_price_usd" not in columns("provider_usage") | columns("usage_totals")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT run_id FROM runs")).scalars().all() == ["r1"]
    engine.dispose()
