"""Reports show cost and savings per team: what its calls were charged and cost at list price, what its
subscription logins saved (list price less the charge, nothing at the margin), and its response-cache hits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from analytics import ReportWindow, build_report
from ledger import CACHE_PROVIDER, AttemptRecord, Ledger, NewTask, RunStatus, prune
from providers import TokenUsage

WINDOW = ReportWindow(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
AT = datetime(2026, 11, 1, 12, tzinfo=UTC)
HIT = {"cache_key": "k", "cache_hit": True, "cache_source": "r:a:1"}


def _attempt(task_id: str, provider_id: str, team: str | None, **fields: object) -> AttemptRecord:
    common = {"run_id": "r", "task_type": "review", "outcome": "success", "started_at": AT, "finished_at": AT}
    return AttemptRecord(task_id=task_id, attempt=1, provider_id=provider_id, team=team, **common, **fields)  # type: ignore[arg-type]


def _week() -> list[AttemptRecord]:
    usage = TokenUsage(input=1000, output=100)
    return [
        # Team "web": a seat call (charged 0, $0.30 at list price), a metered call, two cache hits.
        _attempt("w1", "claude_code", "web", usage=usage, cost_usd=0.0, list_price_usd=0.30, subscription="seat-a"),
        _attempt("w2", "api", "web", usage=usage, cost_usd=0.10),
        _attempt("w3", CACHE_PROVIDER, "web", **HIT, cache_saved_usd=0.10),
        _attempt("w4", CACHE_PROVIDER, "web", **HIT, cache_saved_usd=0.05),
        # Team "data": metered calls only, one cache hit.
        _attempt("d1", "api", "data", usage=usage, cost_usd=0.20),
        _attempt("d2", CACHE_PROVIDER, "data", **HIT, cache_saved_usd=0.20),
        # No team: a seat call.
        _attempt("n1", "claude_code", None, usage=usage, cost_usd=0.0, list_price_usd=0.40, subscription="seat-b"),
    ]


def _rows(engine: Engine, team: str | None = None) -> dict[str | None, dict[str, object]]:
    table = build_report(engine, WINDOW, team=team).tables["by_team"]
    return {(None if r["team"] != r["team"] else r["team"]): r for r in table.to_dict("records")}


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_by_team_shows_cost_list_price_and_savings(database: str, request: pytest.FixtureRequest) -> None:
    engine: Engine = request.getfixturevalue("engine" if database == "sqlite" else "pg_engine")
    Ledger(engine).record_attempts(_week())
    rows = _rows(engine)
    web, data, none = rows["web"], rows["data"], rows[None]
    assert web["cost_usd"] == pytest.approx(0.10) and web["list_price_usd"] == pytest.approx(0.40)
    assert web["subscription_savings_usd"] == pytest.approx(0.30)
    assert (web["cache_hits"], web["cache_savings_usd"]) == (2, pytest.approx(0.15))
    assert web["savings_usd"] == pytest.approx(0.45)
    assert data["subscription_savings_usd"] == pytest.approx(0.0)
    assert (data["cache_hits"], data["savings_usd"]) == (1, pytest.approx(0.20))
    assert (none["cache_hits"], none["savings_usd"]) == (0, pytest.approx(0.40))


def test_a_team_filter_keeps_other_teams_savings_out(engine: Engine) -> None:
    Ledger(engine).record_attempts(_week())
    rows = _rows(engine, team="data")
    assert list(rows) == ["data"]
    assert rows["data"]["cache_hits"] == 1 and rows["data"]["savings_usd"] == pytest.approx(0.20)
    totals = build_report(engine, WINDOW, team="data").totals
    assert (totals["cache_hits"], totals["cache_savings_usd"]) == (1, pytest.approx(0.20))


def test_a_pruned_period_keeps_each_teams_cache_savings(engine: Engine) -> None:
    ledger = Ledger(engine)
    run_id, _ = ledger.start_or_resume_run(
        batch_name="b",
        batch_hash="h",
        team=None,
        strategy=None,
        tasks=[NewTask(task_id="w1", task_type="review", priority="normal")],
    )
    ledger.record_attempts([a.model_copy(update={"run_id": run_id}) for a in _week()])
    before = _rows(engine)
    ledger.finish_run(run_id, RunStatus.COMPLETED)
    assert prune(engine, datetime.now(UTC) + timedelta(seconds=1)).attempts == 7
    after = _rows(engine)
    for team in ("web", "data", None):
        assert after[team]["cache_hits"] == before[team]["cache_hits"]
        assert after[team]["savings_usd"] == pytest.approx(before[team]["savings_usd"])
    assert after["web"]["savings_usd"] == pytest.approx(0.45)
    # A later hit on the same day: the live row and the pruned totals add up.
    ledger.record_attempts([_attempt("w5", CACHE_PROVIDER, "web", **HIT, cache_saved_usd=0.01)])
    web = _rows(engine)["web"]
    assert (web["cache_hits"], web["cache_savings_usd"]) == (3, pytest.approx(0.16))
