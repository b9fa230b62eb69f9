"""The `usage_report` Prefect flow under the test harness: report folder, artifacts and alert events."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledger import create_ledger_engine, data_dir
from tests.analytics import sample_ledger as sample

pytestmark = pytest.mark.usefixtures("prefect_harness")

PROVIDERS = {
    "version": 1,
    "alerts": {"daily_cost_usd": 30.0, "error_rate": 0.2},
    "providers": {
        "alpha": {"type": "local_mock", "priority": 1, "prices": {"*": {"input": 3.0, "output": 15.0}}},
        "beta": {
            "type": "local_mock",
            "priority": 2,
            "prices": {"*": {"input": 0.5, "output": 1.5}},
            "limits": {"tokens_per_hour": 2_000_000},
        },
        "gamma": {"type": "local_mock", "priority": 3, "prices": {"*": {"input": 1.0, "output": 2.0}}},
    },
}


@pytest.fixture
def providers_file(tmp_path: Path, ledger_url: str) -> Path:
    engine = create_ledger_engine(ledger_url)
    sample.fill(engine)
    engine.dispose()
    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump(PROVIDERS))
    return path


def _alert_events(since: float) -> list[Any]:
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    query = EventFilter(
        event=EventNameFilter(prefix=["switchboard.alert."]),
        occurred=EventOccurredFilter(since=datetime.fromtimestamp(since - 5, UTC)),
    )
    with get_client(sync_client=True) as client:
        return list(client.read_events(filter=query, limit=50).events)


def test_flow_writes_the_folder_and_publishes_artifacts_and_alert_events(tmp_path: Path, providers_file: Path) -> None:
    from prefect.artifacts import Artifact

    from flows import usage_report

    started = time.time()
    out = tmp_path / "report"
    result = usage_report(since="2026-11-01", until="2026-11-03", out_dir=str(out), providers=str(providers_file))
    assert result["totals"]["cost_usd"] == pytest.approx(65.55, abs=0.005)
    assert result["totals"]["success_rate"] == pytest.approx(0.7)
    assert Path(result["files"]["html"]) == out / "report.html"
    assert {Path(p).name for p in result["files"]["png"].values()} == {
        "cost_over_time.png",
        "latency_percentiles.png",
        "quota_utilisation.png",
        "circuit_health.png",
    }
    assert all(Path(p).stat().st_size > 0 for p in result["files"]["csv"].values())
    kinds = sorted((a["kind"], a["subject"]) for a in result["alerts"])
    assert kinds == [("daily_cost", "2026-11-01"), ("error_rate", "all")]

    table = Artifact.get("usage-report-by-provider")
    assert table is not None and table.type == "table"
    rows = {r["provider_id"]: r for r in json.loads(table.data)}  # type: ignore[arg-type]
    assert rows["alpha"]["cost_usd"] == pytest.approx(57.30, abs=0.005)
    quota = Artifact.get("usage-report-quota")
    assert quota is not None and json.loads(quota.data)[0]["limit"] == "tokens_per_hour"  # type: ignore[arg-type]
    summary = Artifact.get("usage-report-summary")
    assert summary is not None and summary.type == "markdown"
    assert "## Recommendations" in summary.data  # type: ignore[operator]
    assert "beta is near its tokens_per_hour limit" in summary.data  # type: ignore[operator]
    assert "cost on 2026-11-01 was $38.50, over $30.00" in summary.data  # type: ignore[operator]
    progress = Artifact.get("usage-report-progress")
    assert progress is not None and progress.type == "progress" and float(progress.data) == 100.0  # type: ignore[arg-type]

    events: list[Any] = []
    for _ in range(40):  # the server ingests events asynchronously
        events = _alert_events(started)
        if len(events) >= 2:
            break
        time.sleep(0.5)
    names = sorted(e.event for e in events)
    assert names == ["switchboard.alert.daily_cost", "switchboard.alert.error_rate"]
    daily = next(e for e in events if e.event == "switchboard.alert.daily_cost")
    assert daily.resource.id == "switchboard.alert.daily_cost.2026-11-01"
    assert daily.payload["value"] == pytest.approx(38.50)


def test_flow_default_folder_is_dated_under_the_data_dir(providers_file: Path) -> None:
    from flows import usage_report

    result = usage_report(since="1d", until="2026-11-03T00:00:00+00:00", team="search", providers=str(providers_file))
    folder = Path(result["files"]["folder"])
    assert folder == data_dir() / "reports" / "2026-11-03-team-search"
    assert (folder / "report.html").is_file()
    assert result["totals"]["attempts"] == 4  # team search on Nov 2


def test_artifact_keys_are_lowercase_dashes() -> None:
    from flows import artifact_key

    assert artifact_key("by_provider") == "usage-report-by-provider"
    assert artifact_key("summary", "Data Science/EU") == "usage-report-summary-team-data-science-eu"
