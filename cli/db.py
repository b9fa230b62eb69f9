"""`switchboard db upgrade|downgrade|current|history`: the ledger's Alembic migrations by hand (ledger/schema.py)."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated

from cyclopts import App, Parameter
from rich.prompt import Confirm

from cli.app import EXIT_FAILED, EXIT_INVALID, EXIT_OK, app, out_console, print_error
from ledger import (
    PruneResult,
    SchemaError,
    default_database_url,
    downgrade_schema,
    head_revision,
    prune,
    schema_engine,
    schema_history,
    schema_revision,
    shown_url,
    sqlite_file_missing,
    upgrade_schema,
)

db_app = App(name="db", help="The ledger's schema (Alembic migrations) and retention.")
app.command(db_app)

UrlOption = Annotated[
    str | None,
    Parameter(help="The ledger database (default: $SWITCHBOARD_DATABASE_URL, else ~/.switchboard/ledger.db)."),
]
JsonOption = Annotated[bool, Parameter(name="--json", negative="", help="Print one JSON object on stdout.")]


def _say(text: str) -> None:
    out_console.print(text, highlight=False, markup=False, soft_wrap=True)


def _shown(revision: str | None) -> str:
    return revision or "none (no ledger tables)"


@db_app.command
def upgrade(revision: str = "head", *, url: UrlOption = None) -> int:
    """Upgrade the ledger's schema to REVISION (default: the newest). Creates the ledger if there is none.

    Every command that uses the ledger does this on first use; this is for doing it on purpose, e.g. a shared
    PostgreSQL ledger before its workers are upgraded.
    """
    engine = schema_engine(url)
    try:
        before, after = upgrade_schema(engine, revision)
    except SchemaError as exc:
        return _refused(exc)
    finally:
        engine.dispose()
    _say(f"{_where(url)}: {_shown(before)} -> {_shown(after)}" if before != after else f"{_where(url)}: at {after}")
    return EXIT_OK


@db_app.command
def downgrade(revision: str, *, url: UrlOption = None) -> int:
    """Downgrade the ledger's schema to REVISION: an id (see `db history`), -1 for one step, or base (drops the
    ledger's tables and their data).

    To run an older Switchboard against this ledger. Any command of this version upgrades it again on first use.
    """
    missing = sqlite_file_missing(url or default_database_url())
    if missing is not None:
        print_error(f"no ledger at {missing}: nothing to downgrade")
        return EXIT_INVALID
    engine = schema_engine(url)
    try:
        before, after = downgrade_schema(engine, revision)
    except SchemaError as exc:
        return _refused(exc)
    finally:
        engine.dispose()
    _say(f"{_where(url)}: {_shown(before)} -> {_shown(after)}")
    return EXIT_OK


@db_app.command
def current(*, url: UrlOption = None, as_json: JsonOption = False) -> int:
    """Show the revision the ledger is at, and whether it is the newest. Changes nothing."""
    head = head_revision()
    missing = sqlite_file_missing(url or default_database_url())
    revision = None
    if missing is None:
        engine = schema_engine(url)
        try:
            revision = schema_revision(engine)
        finally:
            engine.dispose()
    if as_json:
        sys.stdout.write(json.dumps({"database": _where(url), "current": revision, "head": head}) + "\n")
        return EXIT_OK
    if missing is not None:
        _say(f"{_where(url)}: no ledger yet (the first run creates it at {head}; or `switchboard db upgrade`)")
    elif revision == head:
        _say(f"{_where(url)}: {revision} (head)")
    elif revision is None:
        _say(f"{_where(url)}: no ledger tables (`switchboard db upgrade` creates them at {head})")
    else:
        _say(f"{_where(url)}: {revision} (head is {head}; `switchboard db upgrade` moves it there)")
    return EXIT_OK


@db_app.command
def history(*, url: UrlOption = None, as_json: JsonOption = False) -> int:
    """List the ledger's migrations, newest first, marking the one the ledger is at."""
    revisions = schema_history()
    at = None
    if sqlite_file_missing(url or default_database_url()) is None:
        engine = schema_engine(url)
        try:
            at = schema_revision(engine)
        finally:
            engine.dispose()
    if as_json:
        rows = [{**r.__dict__, "current": r.revision == at} for r in revisions]
        sys.stdout.write(json.dumps({"database": _where(url), "revisions": rows}) + "\n")
        return EXIT_OK
    for r in revisions:
        marks = " ".join(
            m for m in ("(head)" if r is revisions[0] else "", "(current)" if r.revision == at else "") if m
        )
        _say(f"{r.down_revision or 'base'} -> {r.revision} {marks}".rstrip() + f"  {r.summary}")
    return EXIT_OK


@db_app.command(name="prune")
def prune_command(
    *,
    before: Annotated[
        str, Parameter(help="Prune runs that finished before this: YYYY-MM-DD (UTC), an ISO time, or 90d.")
    ],
    outputs_only: Annotated[
        bool, Parameter(negative="", help="Only clear those runs' answers; keep every row.")
    ] = False,
    dry_run: Annotated[bool, Parameter(negative="", help="Say what would go; change nothing.")] = False,
    yes: Annotated[bool, Parameter(negative="", help="Do not ask before pruning.")] = False,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> int:
    """Retention: remove the runs that finished before DATE (their tasks, attempts and answers, and provider
    events before DATE), keeping their attempts' sums for reports; or with --outputs-only clear their answers.

    Reports over a pruned period still show its cost, tokens, attempts and outcomes (kept per UTC day, provider,
    subscription, model, task type, team, strategy and outcome); its latency percentiles, failovers and circuit
    history go with the rows. Runs that never finished are kept. Exit 2 on a DATE that is not in the past.
    """
    try:
        cutoff = _cutoff(before)
    except ValueError as exc:
        print_error(f"--before: {exc}")
        return EXIT_INVALID
    missing = sqlite_file_missing(url or default_database_url())
    if missing is not None:
        print_error(f"no ledger at {missing}: nothing to prune")
        return EXIT_INVALID
    engine = schema_engine(url)
    try:
        if schema_revision(engine) != head_revision():
            upgrade_schema(engine)  # the totals table comes with the newest schema
        plan = prune(engine, cutoff, outputs_only=outputs_only, dry_run=True)
        if not dry_run and plan.runs and not yes and not as_json:
            _say(_describe_prune(plan, url))
            if not Confirm.ask("Prune them?", default=False, console=out_console):
                _say("nothing pruned")
                return EXIT_FAILED
        result = plan if dry_run or not plan.runs else prune(engine, cutoff, outputs_only=outputs_only)
        if not dry_run and plan.runs and not outputs_only and engine.dialect.name == "sqlite":
            with engine.connect() as conn:  # give the space back to the file system
                conn.exec_driver_sql("VACUUM")
    except SchemaError as exc:
        return _refused(exc)
    finally:
        engine.dispose()
    if as_json:
        sys.stdout.write(json.dumps({**asdict(result), "before": result.before.isoformat()}) + "\n")
    else:
        _say(_describe_prune(result, url))
    return EXIT_OK


def _cutoff(text: str) -> datetime:
    """YYYY-MM-DD (midnight UTC), an ISO time (UTC without a zone), or `Nd` days ago; never in the future."""
    now = datetime.now(UTC)
    days = re.fullmatch(r"(\d+)d", text.strip())
    if days:
        moment = now - timedelta(days=int(days.group(1)))
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text!r} is not a date (YYYY-MM-DD), an ISO time or a number of days (90d)") from None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment > now:
        raise ValueError(f"{moment.isoformat()} is in the future; prune keeps everything after it")
    return moment


def _describe_prune(result: PruneResult, url: str | None) -> str:
    when = result.before.strftime("%Y-%m-%d %H:%M:%S UTC")
    verb = "would be" if result.dry_run else "were"
    if result.outputs_only:
        text = f"{_where(url)}: the answers of {result.runs} run(s) that finished before {when} {verb} cleared"
        text += f" ({result.tasks} task(s), {result.attempts} attempt(s)); every row is kept"
    else:
        text = (
            f"{_where(url)}: {result.runs} run(s) that finished before {when} {verb} pruned: {result.tasks} task(s), "
            f"{result.attempts} attempt(s) (${result.cost_usd:.4f}), {result.events} provider event(s); "
            "their cost, tokens, attempts and outcomes are kept as totals for reports"
        )
    if result.unfinished_kept:
        text += f"; {result.unfinished_kept} run(s) started before then never finished and are kept"
    return text


def _where(url: str | None) -> str:
    """The database as it is safe to print (a password masked)."""
    return shown_url(url or default_database_url())


def _refused(exc: SchemaError) -> int:
    print_error(str(exc))
    return EXIT_INVALID


__all__ = ["current", "db_app", "downgrade", "history", "prune_command", "upgrade"]
