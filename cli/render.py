"""Human-readable tables for `switchboard run`, `runs` and `show`.

Everything shown here that a user or a provider wrote (batch and task names, provider names, outputs, errors,
routing reasons) goes in as `Text`, never as console markup: `list[str]`, `[docs]` or `nightly [/] review` must
print as written, not be read as styles (or crash the command).
"""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from batches import AttemptSummary, RunDigest, RunSummary, TaskSummary, digest, needs_digest
from cli.terminal import for_terminal, shown
from ledger import RouteDecision

_STATUS_STYLE = {"completed": "green", "failed": "red", "skipped": "yellow", "cancelled": "magenta"}
# Wide enough for any table we print; a piped table is rendered at its natural width up to this.
_WIDEST = 10_000
# The narrowest a column whose words may be broken is made before giving up on a plan of our own.
_NARROWEST = 8


def print_whole(console: Console, table: Table, *, breakable: tuple[int, ...] = ()) -> None:
    """Print a table without cutting anything.

    In a terminal narrower than the table, cells first wrap between words (see `_narrow`); if that is not
    enough, words are broken in the `breakable` columns (say, task ids before provider names), and only then
    anywhere. Piped (a file, `grep`, `less`), the table gets the width it needs: there is no screen edge.
    """
    natural = Measurement.get(console, console.options.update(width=_WIDEST), table).maximum
    if console.is_terminal:
        _narrow(console, table, natural - console.width, breakable)
        console.print(table)
        return
    # Console.print never renders wider than the console, so a wide table gets a console of its own width.
    wide = Console(file=console.file, width=max(console.width, natural), color_system=None, highlight=False)
    wide.print(table)


def _narrow(console: Console, table: Table, excess: int, breakable: tuple[int, ...]) -> None:
    """Fix column widths that take `excess` off the table: first from every column in proportion to what it
    can give by wrapping between words (its natural width less its longest word), then by breaking words in
    the `breakable` columns, down to `_NARROWEST`.

    Rich on its own narrows the widest columns first, which broke provider names in the attempts column
    while other columns could still wrap. When this plan cannot save enough, widths are left to rich, whose
    own narrowing breaks words anywhere but never drops a character.
    """
    if excess <= 0:
        return
    options = console.options.update(width=_WIDEST)
    spans = [
        [Measurement.get(console, options, cell) for cell in (column.header, *column.cells)] for column in table.columns
    ]
    widths = [max(m.maximum for m in column) for column in spans]
    slack = [width - max(m.minimum for m in column) for width, column in zip(widths, spans, strict=True)]
    remaining, left = excess, sum(slack)
    for index, give in enumerate(slack):
        taken = min(give, round(remaining * give / left)) if left else 0
        widths[index] -= taken
        remaining, left = remaining - taken, left - give
    for index in breakable:
        taken = min(remaining, max(widths[index] - _NARROWEST, 0))
        widths[index] -= taken
        remaining -= taken
    if remaining > 0:
        return
    for column, width in zip(table.columns, widths, strict=True):
        column.width = width


def _status(status: str) -> Text:
    return Text(str(status), style=_STATUS_STYLE.get(status, ""))


def _attempts_text(attempts: list[AttemptSummary]) -> Text:
    """One attempt per line (`flaky: unavailable`, `→ steady: ok`), so a narrow column wraps between
    attempts instead of cutting provider names short."""
    if not attempts:
        return Text("-")
    lines = [
        ("→ " if i else "") + f"{a.where}: {'ok' if a.outcome == 'success' else a.outcome}"
        for i, a in enumerate(attempts)
    ]
    return shown("\n".join(lines))


def _table(title: Text, columns: dict[str, str]) -> Table:
    """A table whose cells wrap (folding a word only when it alone is wider than its column), never cut."""
    table = Table(title=title, title_justify="left", highlight=False)
    for name, justify in columns.items():
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    return table


def render_run(
    console: Console,
    summary: RunSummary,
    *,
    explain: bool = False,
    outputs: bool = False,
    whole: bool = False,
    show_command: str | None = None,
) -> None:
    """The run's table, one row per task; above `DIGEST_ABOVE` tasks (unless `whole`) its digest instead.

    `show_command` is the `switchboard show ...` that selected these tasks (a digest names it, with `--all`,
    as the way to see every task); by default `switchboard show RUN`.
    """
    if not whole and needs_digest(len(summary.tasks)):
        render_digest(console, summary, digest(summary), show_command or f"switchboard show {summary.run.id}")
        return
    run = summary.run
    table = _table(
        shown(f"run {run.id} · {run.name} · {run.status}"),
        {
            "task": "left",
            "status": "left",
            "provider": "left",
            "attempts": "left",
            "cost $": "right",
            "latency\nms": "right",
        },
    )
    for t in summary.tasks:
        table.add_row(
            shown(t.id),
            _status(t.status) if not t.waits_in_vendor_batch else Text("waiting (vendor batch)", style="cyan"),
            shown(t.provider or "-"),
            _attempts_text(t.attempts),
            f"{t.cost_usd:.6f}",
            f"{t.latency_ms:.0f}",
        )
    print_whole(console, table, breakable=(0, 2))  # task ids, then the provider column, break before attempts
    _totals_and_link(console, summary)
    _vendor_waits(console, summary)
    for t in summary.tasks:
        if explain and t.decision:
            console.print(_decision_line(t.id, t.decision), highlight=False)
        if outputs and (t.output or t.error):
            console.print(_output_block(t), highlight=False)


def render_digest(console: Console, summary: RunSummary, digested: RunDigest, show_command: str) -> None:
    """A large run on one screen: groups by status and provider, the failed and skipped tasks (up to a limit,
    with how many more and the command listing them), totals, and the command that shows every task.

    Every line is one line on the screen (cut, not wrapped), so the whole stays within about 35 lines.
    """
    run = summary.run
    console.print(
        shown(f"run {run.id} · {run.name} · {run.status} · {digested.tasks:,} tasks shown grouped"),
        highlight=False,
        **_one_line(console),
    )
    table = _table(
        Text(""),
        {
            "status": "left",
            "provider": "left",
            "tasks": "right",
            "cost $": "right",
            "p50 ms": "right",
            "p95 ms": "right",
            "failovers": "right",
        },
    )
    table.title = None
    for g in digested.groups:
        table.add_row(
            _status(g.status),
            shown(g.provider),
            f"{g.tasks:,}",
            f"{g.cost_usd:.6f}",
            _ms(g.p50_ms),
            _ms(g.p95_ms),
            f"{g.failovers:,}",
        )
    print_whole(console, table, breakable=(1,))
    if digested.problems:
        console.print(Text(f"failed and skipped ({digested.problems:,}):", style="bold"), highlight=False)
        width = max(len(t.id) for t in digested.listed)
        for t in digested.listed:
            line = Text.assemble(
                "  ", (for_terminal(t.id).ljust(width), "bold"), "  ", _status(t.status), for_terminal(f"  {t.reason}")
            )
            console.print(line, highlight=False, **_one_line(console))
        if digested.unlisted:
            statuses = " ".join(f"--status {s}" for s in ("failed", "skipped"))
            console.print(
                shown(f"  … and {digested.unlisted:,} more: {show_command} {statuses} --all"),
                highlight=False,
                **_one_line(console),
            )
    _totals_and_link(console, summary)
    console.print(
        shown(f"every task: {show_command} --all (a table), or --json"), highlight=False, **_one_line(console)
    )


def _one_line(console: Console) -> dict[str, object]:
    """Print options that keep a line on one line: cut with an ellipsis on a terminal, whole when piped."""
    if console.is_terminal:
        return {"no_wrap": True, "overflow": "ellipsis"}
    return {"soft_wrap": True}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _vendor_waits(console: Console, summary: RunSummary) -> None:
    """Which tasks wait in which vendor batch (its id, as the vendor's console shows it)."""
    waiting: dict[tuple[str, str], list[str]] = {}
    for t in summary.tasks:
        if t.waits_in_vendor_batch and t.vendor_batch is not None:
            waiting.setdefault((t.vendor_batch.provider, t.vendor_batch.id), []).append(t.id)
    for (provider, batch_id), task_ids in waiting.items():
        line = f"waiting in vendor batch {batch_id} ({provider}): {', '.join(task_ids)}"
        console.print(shown(line), highlight=False, soft_wrap=True)


def _totals_and_link(console: Console, summary: RunSummary) -> None:
    run, totals = summary.run, summary.totals
    console.print(
        f"completed {totals.completed} · failed {totals.failed} · skipped {totals.skipped}"
        + (f" · cancelled {totals.cancelled}" if totals.cancelled else "")
        + f" · failovers {totals.failovers}"
        + (f" · rotations {totals.rotations}" if totals.rotations else "")
        + (f" · quota failures {totals.quota_failures}" if totals.quota_failures else "")
        + (
            f" · waiting in vendor batches {totals.waiting_in_vendor_batches}"
            if totals.waiting_in_vendor_batches
            else ""
        )
        + f" · cost ${totals.cost_usd:.6f}"
        + (
            f" · from the cache {totals.cache_hits} (saved ${totals.cache_savings_usd:.6f})"
            if totals.cache_hits
            else ""
        ),
        highlight=False,
        markup=False,
    )
    if run.ui_url:
        console.print(shown(f"Prefect flow run: {run.ui_url}"), highlight=False, soft_wrap=True)
    elif run.flow_run_id:
        console.print(shown(f"Prefect flow run: {run.flow_run_id}"), highlight=False)


def _decision_line(task_id: str, decision: RouteDecision) -> Text:
    skipped = ", ".join(f"{p} ({why})" for p, why in decision.skipped.items()) or "none"
    order = " > ".join(decision.order)
    cached = decision.cache
    source = (
        f"; answered from the cache: {cached.provider_id}'s answer to {cached.run_id}:{cached.task_id}, saved"
        f" ${cached.saved_usd:.6f}"
        if cached is not None
        else ""
    )
    return Text.assemble(
        (for_terminal(task_id), "bold"),
        for_terminal(
            f": strategy {decision.strategy}; order {order}; skipped {skipped}; chosen {decision.chosen or '-'}"
            + source
        ),
    )


def _output_block(task: TaskSummary) -> Text:
    text = Text.assemble((for_terminal(task.id), "bold"), for_terminal(f" output: {task.output or ''}"))
    if task.error:
        text.append(for_terminal(f"\n  error: {task.error}"))
    return text


def render_runs(console: Console, summaries: list[RunSummary]) -> None:
    """A listing without borders (like `docker ps`), so it fits 80 columns with the ids whole."""
    table = Table(title=Text("runs (newest first)"), title_justify="left", box=None, pad_edge=False, highlight=False)
    table.add_column("run", no_wrap=True)  # whole, on one line: people copy ids into `switchboard show`
    # The rest wrap (folding a word only when it alone is wider than its column) rather than being cut.
    table.add_column("batch", overflow="fold")
    table.add_column("status", overflow="fold")
    table.add_column("done", justify="right", overflow="fold")
    table.add_column("cost $", justify="right", overflow="fold")
    table.add_column("started (UTC)", overflow="fold")
    for s in summaries:
        run, totals = s.run, s.totals
        table.add_row(
            shown(run.id),
            shown(run.name),
            _status(run.status),
            f"{totals.completed}/{len(s.tasks)}",
            f"{totals.cost_usd:.6f}",
            run.started_at[:16].replace("T", " "),  # to the minute: the id has the seconds
        )
    print_whole(console, table, breakable=(1,))  # batch names break; ids never do


__all__ = ["print_whole", "render_digest", "render_run", "render_runs"]
