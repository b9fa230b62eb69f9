"""The report folder: CSVs, real PNG charts, one self-contained HTML file; also for empty and one-row ledgers."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from analytics import TABLES, ReportSettings, ReportWindow, build_report, write_report
from ledger import AttemptRecord, Ledger
from providers import TokenUsage
from tests.analytics import sample_ledger as sample

WINDOW = ReportWindow(sample.SINCE, sample.UNTIL)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHARTS = ("cost_over_time", "latency_percentiles", "quota_utilisation", "circuit_health")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables = 0
        self.images: list[str] = []
        self.headings: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables += 1
        elif tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        elif tag in ("h1", "h2", "h3"):
            self._in_heading = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3"):
            self._in_heading = False

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.headings.append(data.strip())


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _check_png(data: bytes) -> None:
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 5_000


def _check_png_file(path: Path) -> None:
    _check_png(path.read_bytes())
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] >= 300 and pixels.shape[1] >= 600
    assert float(np.std(pixels[..., :3])) > 0.01  # something is drawn, not a blank canvas


def test_report_folder_has_csvs_charts_html_and_json(engine: Engine, tmp_path: Path) -> None:
    sample.fill(engine)
    report = build_report(engine, WINDOW, settings=ReportSettings(limits=sample.LIMITS, prices=sample.PRICES))
    files = write_report(report, tmp_path / "out")
    assert set(files.csv) == set(TABLES)
    by_day = pd.read_csv(files.csv["by_day"])
    assert by_day["day"].tolist() == ["2026-11-01", "2026-11-02"]
    assert by_day["cost_usd"].sum() == pytest.approx(65.55, abs=0.005)
    quota = pd.read_csv(files.csv["quota"])
    assert set(quota["limit"]) == {"requests_per_day", "tokens_per_hour"}
    assert set(files.png) == set(CHARTS)
    for path in files.png.values():
        _check_png_file(path)
    assert json.loads(files.json.read_text())["totals"]["attempts"] == 10  # type: ignore[union-attr]

    page = _parse(files.html.read_text(encoding="utf-8"))  # type: ignore[union-attr]
    assert page.tables == len(TABLES)  # the sample has rows in every table
    assert len(page.images) == len(CHARTS)
    for src in page.images:
        assert src.startswith("data:image/png;base64,")  # embedded, so the file opens anywhere
        _check_png(base64.b64decode(src.split(",", 1)[1]))
    assert "Switchboard usage report" in page.headings
    assert "Recommendations" in page.headings and "Alerts" in page.headings


def test_html_renders_in_headless_chromium(engine: Engine, tmp_path: Path) -> None:
    browser = next(
        (shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
    )
    if browser is None:
        pytest.skip("chromium is not installed; the HTML is checked with html.parser instead")
    sample.fill(engine)
    files = write_report(build_report(engine, WINDOW), tmp_path / "out")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chrome'}",
            "--window-size=1200,2000",
            f"--screenshot={shot}",
            files.html.as_uri(),  # type: ignore[union-attr]
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    _check_png_file(shot)


def test_empty_ledger(engine: Engine, tmp_path: Path) -> None:
    report = build_report(engine, WINDOW, settings=ReportSettings(limits=sample.LIMITS))
    document = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert document["totals"]["cost_usd"] == 0.0
    assert document["totals"]["attempts"] == 0
    # undefined, not 0% and not NaN
    assert document["totals"]["success_rate"] is None
    assert document["totals"]["attempt_success_rate"] is None and document["totals"]["task_success_rate"] is None
    assert document["totals"]["tasks"] == 0
    assert document["by_provider"] == [] and document["by_day"] == [] and document["recommendations"] == []
    assert {r["used"] for r in document["quota"]} == {0.0}
    files = write_report(report, tmp_path / "empty")
    for path in files.png.values():
        _check_png_file(path)  # "no data in this period" is still a real chart
    page = _parse(files.html.read_text(encoding="utf-8"))  # type: ignore[union-attr]
    assert len(page.images) == len(CHARTS)
    assert page.tables == 1  # only quota (limits configured) has rows


def test_single_row_ledger(engine: Engine, tmp_path: Path) -> None:
    started = datetime(2026, 11, 1, 12, tzinfo=UTC)
    record = AttemptRecord(
        run_id="r",
        task_id="t",
        provider_id="solo",
        task_type="review",
        attempt=1,
        outcome="success",
        started_at=started,
        finished_at=started,
        usage=TokenUsage(input=1000, output=200),
        cost_usd=0.0123,
        latency_ms=321.0,
    )
    Ledger(engine).record_attempts([record])
    report = build_report(engine, WINDOW)
    document = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert document["totals"] == {
        "cost_usd": 0.0123,
        "list_price_usd": 0.0123,  # charged at list price: the same
        "attempts": 1,
        "successes": 1,
        "not_provider_failures": 0,
        "success_rate": 1.0,
        "attempt_success_rate": 1.0,
        "tasks": 1,
        "task_success_rate": 1.0,
        "tokens_input": 1000,
        "tokens_output": 200,
        "tokens_cache_read": 0,
        "tokens_cache_write": 0,
        "tokens_reasoning": 0,
        "failovers": 0,
        "retries": 0,
        "rotations": 0,
        "providers": 1,
        "quota_failures": 0,
        "cache_hits": 0,
        "cache_savings_usd": 0.0,
    }
    (perf,) = document["performance"]
    assert perf["p50_ms"] == perf["p95_ms"] == perf["p99_ms"] == 321.0
    assert document["by_day"][0]["day"] == "2026-11-01"
    assert document["routing"][0]["strategy"] == "(none)"  # recorded without a strategy: counted, labelled
    files = write_report(report, tmp_path / "one")
    for path in files.png.values():
        _check_png_file(path)


def test_single_failed_attempt_has_no_latency_and_zero_success(engine: Engine) -> None:
    started = datetime(2026, 11, 1, 12, tzinfo=UTC)
    record = AttemptRecord(
        run_id="r",
        task_id="t",
        provider_id="solo",
        task_type="review",
        attempt=1,
        outcome="timeout",
        started_at=started,
        finished_at=started,
        latency_ms=30_000.0,
    )
    Ledger(engine).record_attempts([record])
    document = json.loads(json.dumps(build_report(engine, WINDOW).to_json(), allow_nan=False))
    assert document["totals"]["success_rate"] == 0.0
    assert document["performance"][0]["p50_ms"] is None
    assert document["errors"] == [
        {
            "provider_id": "solo",
            "outcome": "timeout",
            "counts_against_provider": True,
            "attempts": 1,
            "share_of_attempts": 1.0,
            "share_of_errors": 1.0,
        }
    ]


def _coloured_pixels(path: Path) -> int:
    """Pixels that are clearly not grey: bars and legend swatches, not axes or text."""
    rgb = matplotlib.image.imread(path)[..., :3]
    return int(((rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.25).sum())


def test_circuit_health_chart_draws_opens_and_recoveries(engine: Engine, tmp_path: Path) -> None:
    sample.fill(engine)
    files = write_report(build_report(engine, WINDOW), tmp_path / "out")
    chart = files.png["circuit_health"]
    _check_png_file(chart)
    # gamma and alpha opened, gamma and beta recovered: bars in provider colours above and below the axis.
    assert _coloured_pixels(chart) > 2_000
    page = _parse(files.html.read_text(encoding="utf-8"))  # type: ignore[union-attr]
    assert "Circuit opens (up) and recoveries (down) per UTC day by provider" in page.headings
    quiet = write_report(build_report(engine, ReportWindow(WINDOW.until, WINDOW.until.replace(day=4))), tmp_path / "q")
    _check_png_file(quiet.png["circuit_health"])  # a real image saying there is nothing to show
    assert _coloured_pixels(quiet.png["circuit_health"]) == 0
