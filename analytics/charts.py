"""Report charts as PNG bytes: cost over time, latency percentiles, quota utilisation, circuit health.

Drawn on matplotlib's `Figure` with the Agg canvas directly (no pyplot): no global figure state, no GUI
backend, safe inside Prefect worker threads and on machines without a display.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib import rcParams
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from analytics.report import Report

CHARTS = {
    "cost_over_time": "Cost per UTC day by provider",
    "latency_percentiles": "Latency percentiles of successful attempts",
    "quota_utilisation": "Quota utilisation per limit",
    "circuit_health": "Circuit opens (up) and recoveries (down) per UTC day by provider",
}
_DPI = 100


def render_charts(report: Report) -> dict[str, bytes]:
    """Chart name -> PNG bytes, for every chart in `CHARTS` (a chart with no data says so)."""
    return {
        "cost_over_time": _png(_cost_over_time, report.tables["cost_over_time"]),
        "latency_percentiles": _png(_latency, report.tables["performance"]),
        "quota_utilisation": _png(_quota, report.tables["quota"], report.settings.policy.near_limit),
        "circuit_health": _png(_circuit_health, report.tables["health"]),
    }


def _png(draw: Callable[..., None], *args: object) -> bytes:
    figure = Figure(figsize=(9, 4.5), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    draw(figure.add_subplot(), *args)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _empty(ax: Axes, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, "no data in this period", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _cost_over_time(ax: Axes, frame: pd.DataFrame) -> None:
    title = CHARTS["cost_over_time"]
    if frame.empty:
        _empty(ax, title)
        return
    pivot = frame.pivot_table(index="day", columns="provider_id", values="cost_usd", aggfunc="sum", fill_value=0.0)
    labels = [pd.Timestamp(d).strftime("%m-%d") for d in pivot.index]
    x = np.arange(len(pivot.index))
    bottom = np.zeros(len(pivot.index))
    for provider in pivot.columns:
        values = pivot[provider].to_numpy(dtype=float)
        ax.bar(x, values, bottom=bottom, label=str(provider), width=0.8)
        bottom += values
    step = max(1, len(labels) // 15)  # at most ~15 date labels, so they stay readable
    ax.set_xticks(x[::step], labels[::step], rotation=45, ha="right")
    ax.set_ylabel("USD")
    ax.set_title(title)
    # Outside the axes: stacked bars fill the plot area, so a legend inside would hide them.
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _latency(ax: Axes, frame: pd.DataFrame) -> None:
    title = CHARTS["latency_percentiles"]
    data = frame.dropna(subset=["p50_ms"]) if not frame.empty else frame
    if data.empty:
        _empty(ax, title)
        return
    x = np.arange(len(data))
    width = 0.27
    for i, column in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        ax.bar(x + (i - 1) * width, data[column].to_numpy(dtype=float), width, label=column.removesuffix("_ms"))
    ax.set_xticks(x, data["provider_id"].astype(str).tolist(), rotation=20, ha="right")
    ax.set_ylabel("ms")
    ax.set_title(title)
    ax.legend(fontsize="small")


def _quota(ax: Axes, frame: pd.DataFrame, near_limit: float) -> None:
    title = CHARTS["quota_utilisation"]
    if frame.empty:
        _empty(ax, title)
        ax.text(0.5, 0.35, "(no limits configured)", ha="center", va="center", transform=ax.transAxes, color="grey")
        return
    labels = [
        f"{p}{'' if pd.isna(s) else '/' + str(s)} {name}"
        for p, s, name in zip(frame["provider_id"], frame["subscription"], frame["limit"], strict=True)
    ]
    y = np.arange(len(frame))
    ax.barh(y - 0.2, frame["utilisation"].to_numpy(dtype=float) * 100, 0.4, label="now")
    ax.barh(y + 0.2, frame["peak_utilisation"].to_numpy(dtype=float) * 100, 0.4, label="busiest window")
    ax.axvline(100, color="red", linewidth=1)
    ax.axvline(near_limit * 100, color="orange", linewidth=1, linestyle="--", label=f"near limit ({near_limit:.0%})")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("% of limit")
    ax.set_title(title)
    ax.legend(fontsize="small")


def _circuit_health(ax: Axes, frame: pd.DataFrame) -> None:
    title = CHARTS["circuit_health"]
    if frame.empty or not (frame["circuit_opened"].sum() or frame["circuit_closed"].sum()):
        _empty(ax, title)
        ax.text(0.5, 0.35, "(no circuit opened or recovered)", ha="center", va="center", transform=ax.transAxes)
        return
    days = sorted(frame["day"].unique())
    labels = [pd.Timestamp(d).strftime("%m-%d") for d in days]
    x = np.arange(len(days))
    opens = frame.pivot_table(index="day", columns="provider_id", values="circuit_opened", aggfunc="sum")
    closes = frame.pivot_table(index="day", columns="provider_id", values="circuit_closed", aggfunc="sum")
    opens, closes = opens.reindex(days, fill_value=0).fillna(0), closes.reindex(days, fill_value=0).fillna(0)
    up, down = np.zeros(len(days)), np.zeros(len(days))
    colours = list(rcParams["axes.prop_cycle"].by_key()["color"])
    # One colour per provider: opens stacked above the axis, recoveries below it, so both read at a glance.
    for i, provider in enumerate(opens.columns):
        colour = colours[i % len(colours)]
        opened = opens[provider].to_numpy(dtype=float)
        closed = closes[provider].to_numpy(dtype=float)
        ax.bar(x, opened, bottom=up, color=colour, width=0.8, label=str(provider))
        ax.bar(x, -closed, bottom=-down, color=colour, width=0.8, alpha=0.45, hatch="//")
        up += opened
        down += closed
    ax.axhline(0, color="black", linewidth=0.8)
    step = max(1, len(labels) // 15)
    ax.set_xticks(x[::step], labels[::step], rotation=45, ha="right")
    # Counts both ways from the axis: whole numbers, recoveries shown as positive counts below it.
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{abs(value):g}"))
    ax.set_ylabel("opens ↑  /  recoveries ↓")
    ax.set_title(title)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
