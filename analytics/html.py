"""One self-contained HTML report: inline CSS, charts as base64 data URIs, every table; opens offline."""

from __future__ import annotations

import base64
from html import escape

from analytics.charts import CHARTS
from analytics.format import display_frame, format_totals
from analytics.report import TABLES, Report

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d1d1f;max-width:1200px}
h1{margin-bottom:.2rem}.muted{color:#666}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:8px;padding:.6rem 1rem;min-width:9rem}
.card b{display:block;font-size:1.3rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f4f4f6}td:first-child,th:first-child{text-align:left}
.alert{color:#a00}img{max-width:100%;height:auto;border:1px solid #eee}
"""


def render_html(report: Report, charts: dict[str, bytes]) -> str:
    window = report.window
    team = f" · team {escape(report.team)}" if report.team else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Switchboard usage report {window.since:%Y-%m-%d} to {window.until:%Y-%m-%d}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Switchboard usage report</h1>",
        f'<p class="muted">{window.since:%Y-%m-%d %H:%M} to {window.until:%Y-%m-%d %H:%M} UTC{team}</p>',
        '<div class="cards">',
        *(
            f'<div class="card">{escape(label)}<b>{escape(text)}</b></div>'
            for label, text in format_totals(report.totals)
        ),
        "</div>",
        "<h2>Alerts</h2>",
        _list([a.message for a in report.alerts], "No alert thresholds crossed.", css="alert"),
        "<h2>Recommendations</h2>",
        _list([r.message for r in report.recommendations], "No recommendations for this period."),
        "<h2>Charts</h2>",
    ]
    for name, title in CHARTS.items():
        if name in charts:
            data = base64.b64encode(charts[name]).decode("ascii")
            parts.append(f'<h3>{escape(title)}</h3><img alt="{escape(title)}" src="data:image/png;base64,{data}">')
    for name, description in TABLES.items():
        frame = report.tables[name]
        parts.append(f'<h2 id="{name}">{escape(description)}</h2>')
        if frame.empty:
            parts.append('<p class="muted">No rows.</p>')
        else:
            parts.append(display_frame(frame).to_html(index=False, border=0, classes=name, escape=True))
    parts.append("</body></html>")
    return "\n".join(parts)


def _list(items: list[str], empty: str, css: str = "") -> str:
    if not items:
        return f'<p class="muted">{escape(empty)}</p>'
    attr = f' class="{css}"' if css else ""
    return f"<ul{attr}>" + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>"
