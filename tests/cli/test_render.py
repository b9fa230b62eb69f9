"""The human tables of `run`, `runs` and `show`: text printed as written, nothing cut at 80 columns or in a pipe."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from batches import AttemptSummary, RunHeader, RunSummary, RunTotals, TaskSummary, VendorBatchRef
from cli.render import render_run, render_runs
from ledger import DecisionCache, RouteDecision

PROVIDERS = ("claude_primary_subscription", "openai_compatible_fallback", "local_mock_of_last_resort")


def _attempt(provider: str, outcome: str) -> AttemptSummary:
    return AttemptSummary(provider=provider, outcome=outcome, cost_usd=0.0, latency_ms=1.0)


def _summary(name: str = "pr-review", **task: Any) -> RunSummary:
    entry = {
        "id": "review-frontend-and-backend",
        "type": "code_review",
        "status": "completed",
        "provider": PROVIDERS[-1],
        "attempts": [
            _attempt(PROVIDERS[0], "quota_exhausted"),
            _attempt(PROVIDERS[1], "unavailable"),
            _attempt(PROVIDERS[2], "success"),
        ],
        "output": "done",
        "error": None,
        "cost_usd": 0.000123,
        "latency_ms": 1234.0,
        "decision": RouteDecision(strategy="priority_based", order=PROVIDERS, chosen=PROVIDERS[-1]),
        **task,
    }
    return RunSummary(
        run=RunHeader(
            id="r20261130-050430-a19804",
            name=name,
            status="completed",
            flow_run_id=None,
            started_at="2026-11-30T05:04:30+00:00",
        ),
        tasks=[TaskSummary(**entry)],
        totals=RunTotals(completed=1, failed=0, skipped=0, cancelled=0, cost_usd=0.000123, failovers=2),
    )


def _console(width: int, *, terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=terminal, color_system=None, highlight=False), out


def _column(text: str, index: int) -> list[str]:
    """The lines of one column of a boxed table, in order."""
    return [line.split("│")[index].strip() for line in text.splitlines() if line.count("│") == 7]


def test_at_80_columns_the_summary_fits_with_usual_provider_names_whole() -> None:
    console, out = _console(80, terminal=True)
    attempts = [_attempt("claude_primary", "quota_exhausted"), _attempt("mock_primary", "unavailable")]
    render_run(console, _summary(attempts=[*attempts, _attempt("mock_backup", "success")], provider="mock_backup"))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    lines = _column(text, 4)
    for provider in ("claude_primary", "mock_primary", "mock_backup"):
        assert any(provider in line for line in lines), lines  # whole on one line, not folded


def test_at_80_columns_long_names_are_folded_never_cut() -> None:
    console, out = _console(80, terminal=True)
    render_run(console, _summary())
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    attempts = "".join(_column(text, 4))
    for provider in PROVIDERS:  # every character is there, in order
        assert provider in attempts
    assert "review-frontend-and-backend" in "".join(_column(text, 1))


def test_piped_the_summary_is_printed_at_its_natural_width() -> None:
    console, out = _console(80, terminal=False)
    render_run(console, _summary())
    text = out.getvalue()
    assert "claude_primary_subscription: quota_exhausted" in text
    assert "→ openai_compatible_fallback: unavailable" in text and "→ local_mock_of_last_resort: ok" in text
    assert "review-frontend-and-backend" in text and "…" not in text


def test_brackets_in_names_outputs_errors_and_providers_are_not_markup() -> None:
    console, out = _console(200, terminal=True)
    summary = _summary(
        name="nightly [/] review",
        id="a[1]",
        status="failed",
        provider=None,
        attempts=[_attempt("mock[eu]", "unavailable")],
        output="returns list[str], see [docs]",
        error="[flaky] unavailable: [bold]gone[/bold]",
        decision=RouteDecision(strategy="s", order=("mock[eu]",), skipped={"b[x]": "quota: [limit]"}, chosen=None),
    )
    render_run(console, summary, explain=True, outputs=True)
    render_runs(console, [summary])
    text = out.getvalue()
    assert text.count("nightly [/] review") == 2
    assert "mock[eu]: unavailable" in text and "skipped b[x] (quota: [limit])" in text
    assert "a[1] output: returns list[str], see [docs]" in text
    assert "error: [flaky] unavailable: [bold]gone[/bold]" in text


def test_runs_listing_fits_80_columns_with_the_id_whole() -> None:
    console, out = _console(80, terminal=True)
    render_runs(console, [_summary()])
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    row = next(line for line in lines if line.startswith("r2026"))
    assert row.split()[:5] == ["r20261130-050430-a19804", "pr-review", "completed", "1/1", "0.000123"]


def test_a_move_between_subscriptions_shows_them_and_counts_as_a_rotation() -> None:
    console, out = _console(100, terminal=False)
    summary = _summary(
        provider="claude",
        attempts=[
            _attempt("claude", "quota_exhausted").model_copy(update={"subscription": "team-a"}),
            _attempt("claude", "success").model_copy(update={"subscription": "team-b"}),
        ],
    )
    summary = summary.model_copy(update={"totals": summary.totals.model_copy(update={"failovers": 0, "rotations": 1})})
    render_run(console, summary)
    text = out.getvalue()
    assert "claude/team-a: quota_exhausted" in text and "→ claude/team-b: ok" in text
    assert "failovers 0 · rotations 1" in text


def test_control_sequences_from_models_and_names_are_shown_escaped_never_replayed() -> None:
    console, out = _console(300, terminal=True)
    title = "\x1b]0;pwned\x07"  # sets the window title
    summary = _summary(
        name=f"night{title}ly",
        id="a",
        status="failed",
        provider="mock\x1b[2J",
        attempts=[_attempt("mock\x9b2J", "unavailable")],
        output="clear\x1b[2J\x1b[H link \x1b]8;;http://x\x1b\\here\x1b]8;;\x1b\\ half \ud83d emoji\r overwrite",
        error="vendor\x00said \u202eevil",
        decision=RouteDecision(strategy="s", order=("m\x1b",), skipped={"b\x07": "quota: \x1b[31m"}, chosen=None),
    )
    render_run(console, summary, explain=True, outputs=True)
    render_runs(console, [summary])
    text = out.getvalue()
    for raw in ("\x1b]", "\x1b[2J", "\x07", "\x9b", "\x00", "\u202e", "\ud83d", "\r"):
        assert raw not in text
    assert text.count("night\\x1b]0;pwned\\aly") == 2
    assert "clear\\x1b[2J\\x1b[H link \\x1b]8;;http://x\\x1b\\here" in text
    assert "half \\ud83d emoji\\r overwrite" in text
    assert "vendor\\x00said \\u202eevil" in text
    assert "mock\\x9b2J: unavailable" in text and "b\\a (quota: \\x1b[31m)" in text


def test_a_cache_hit_says_where_its_answer_came_from_and_the_run_what_the_cache_saved() -> None:
    console, out = _console(200, terminal=False)
    decision = RouteDecision(
        strategy="priority_based", chosen="cache", cache=DecisionCache("r20261129-1", "review", "claude", 0.0421)
    )
    summary = _summary(provider="cache", attempts=[_attempt("cache", "success")], decision=decision, cost_usd=0.0)
    totals = summary.totals.model_copy(update={"cache_hits": 1, "cache_savings_usd": 0.0421, "failovers": 0})
    render_run(console, summary.model_copy(update={"totals": totals}), explain=True)
    text = out.getvalue()
    assert "answered from the cache: claude's answer to r20261129-1:review, saved $0.042100" in text
    assert "from the cache 1 (saved $0.042100)" in text


def test_show_names_the_vendor_batch_a_task_waits_in() -> None:
    waiting = VendorBatchRef(id="msgbatch_013Zva2CMHLNnXjNJJKqJ2EF", provider="claude-api", state="waiting")
    summary = _summary(status="cancelled", provider=None, attempts=[], output=None, vendor_batch=waiting)
    summary = summary.model_copy(update={"totals": summary.totals.model_copy(update={"waiting_in_vendor_batches": 1})})
    console, out = _console(160, terminal=False)
    render_run(console, summary)
    text = out.getvalue()
    assert "waiting (vendor batch)" in text
    assert "waiting in vendor batch msgbatch_013Zva2CMHLNnXjNJJKqJ2EF (claude-api): review-frontend-and-backend" in text
    assert "waiting in vendor batches 1" in text
    done = _summary(vendor_batch=waiting.model_copy(update={"state": "done"}))
    console, out = _console(160, terminal=False)
    render_run(console, done)
    assert "vendor batch" not in out.getvalue()  # answered: nothing waits
