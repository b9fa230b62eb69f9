"""Open an existing ledger for reading: reports and what-if replays must never create one.

`ledger.create_ledger_engine` creates the SQLite file (and its folder) and the schema on first use, which is
right for `switchboard run` and wrong for a read-only command: a mistyped `SWITCHBOARD_DATABASE_URL` would
silently report on a brand-new empty ledger. Here a missing file, or a database without the ledger's tables,
is an error that names the URL; an existing ledger at an older schema is migrated, as any command does.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ledger import create_ledger_engine, migrate

# The table every ledger has had since its first migration.
_LEDGER_TABLE = "provider_usage"


class LedgerNotFound(ValueError):
    """The URL names no ledger (no such SQLite file, or a database without the ledger's tables)."""


class LedgerUnreadable(RuntimeError):
    """The ledger exists (or may) but could not be read: the database refused or failed."""


def shown_url(url: str) -> str:
    """The URL as it is safe to print (any password masked)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def open_existing_ledger(url: str) -> Engine:
    """An engine on the ledger at `url`, which must already exist.

    Raises LedgerNotFound (the URL names no ledger) or LedgerUnreadable (the database failed), both naming
    the URL and the reason.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise LedgerNotFound(f"{url!r} is not a database URL ({exc})") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise LedgerNotFound(f"{shown_url(url)} names no ledger file")
        path = Path(database).expanduser()
        if not path.is_file():
            raise LedgerNotFound(f"no ledger at {path} ({shown_url(url)}): the file does not exist")
    try:
        engine = create_ledger_engine(url, migrate_schema=False)
    except SQLAlchemyError as exc:
        raise LedgerUnreadable(f"cannot open the ledger at {shown_url(url)}: {database_reason(exc)}") from None
    try:
        if not inspect(engine).has_table(_LEDGER_TABLE):
            raise LedgerNotFound(f"{shown_url(url)} is not a Switchboard ledger (it has no {_LEDGER_TABLE} table)")
        migrate(engine)
    except LedgerNotFound:
        engine.dispose()
        raise
    except SQLAlchemyError as exc:
        engine.dispose()
        raise LedgerUnreadable(f"cannot read the ledger at {shown_url(url)}: {database_reason(exc)}") from None
    return engine


def database_reason(exc: SQLAlchemyError) -> str:
    # The driver's own message, without SQLAlchemy's statement dump and documentation link.
    original = getattr(exc, "orig", None)
    return str(original if original is not None else exc).strip().splitlines()[0]
