"""`switchboard db upgrade|downgrade|current|history`: the ledger's Alembic migrations by hand (ledger/schema.py)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

from cyclopts import App, Parameter

from cli.app import EXIT_INVALID, EXIT_OK, app, out_console, print_error
from ledger import (
    SchemaError,
    default_database_url,
    downgrade_schema,
    head_revision,
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


def _where(url: str | None) -> str:
    """The database as it is safe to print (a password masked)."""
    return shown_url(url or default_database_url())


def _refused(exc: SchemaError) -> int:
    print_error(str(exc))
    return EXIT_INVALID


__all__ = ["current", "db_app", "downgrade", "history", "upgrade"]
