"""Write a report folder: one CSV per table, the PNG charts, the HTML report and the JSON object."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analytics.charts import render_charts
from analytics.html import render_html
from analytics.report import Report


@dataclass(frozen=True)
class ReportFiles:
    folder: Path
    csv: dict[str, Path] = field(default_factory=dict)
    png: dict[str, Path] = field(default_factory=dict)
    html: Path | None = None
    json: Path | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "folder": str(self.folder),
            "csv": {k: str(v) for k, v in self.csv.items()},
            "png": {k: str(v) for k, v in self.png.items()},
            "html": str(self.html) if self.html else None,
            "json": str(self.json) if self.json else None,
        }


def csv_text(frame: pd.DataFrame) -> str:
    """A table as CSV: days as YYYY-MM-DD, timestamps ISO 8601 UTC, empty cells for missing values."""
    out = frame.copy()
    if "day" in out.columns and not out.empty:
        out["day"] = pd.to_datetime(out["day"], utc=True).dt.strftime("%Y-%m-%d")
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].map(lambda t: "" if pd.isna(t) else t.isoformat())
    return out.to_csv(index=False, lineterminator="\n")


def write_report(report: Report, folder: str | Path) -> ReportFiles:
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    csv = {}
    for name, frame in report.tables.items():
        path = folder / f"{name}.csv"
        path.write_text(csv_text(frame), encoding="utf-8")
        csv[name] = path
    charts = render_charts(report)
    png = {}
    for name, data in charts.items():
        path = folder / f"{name}.png"
        path.write_bytes(data)
        png[name] = path
    html = folder / "report.html"
    html.write_text(render_html(report, charts), encoding="utf-8")
    data = folder / "report.json"
    data.write_text(json.dumps(report.to_json(), allow_nan=False, indent=1) + "\n", encoding="utf-8")
    return ReportFiles(folder, csv, png, html, data)
