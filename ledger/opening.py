"""Opening the ledger, the two ways there are.

For use (`open_ledger`: runs, `runs`, `show`, flows): created on first use, the SQLite file and its folder
included, migrated to the newest schema, and opened once per database per process (one engine and pool).

For reading only (`open_existing_ledger`: reports, what-if replays), which must never create one: a mistyped
`SWITCHBOARD_DATABASE_URL` would silently report on a brand-new empty ledger. A missing file, or a database
without the ledger's tables, is `LedgerNotFound`, and a database that cannot be opened is `LedgerUnavailable`,
both one line naming the setting at fault, the reason and a hint (the CLI exits 2). An existing ledger at an
older schema is migrated, as any command does. A ledger that fails while it is read is `LedgerUnreadable`.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from alembic.util import CommandError
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ledger.db import LedgerUnavailable, create_ledger_engine, database_reason, default_database_url, migrate, shown_url
from ledger.spool import replay_spool
from ledger.store import Ledger

log = logging.getLogger(__name__)

# The table every ledger has had since its first migration.
_LEDGER_TABLE = "provider_usage"
_NOT_CREATED = "`switchboard run` creates a ledger on first use; reports only read one, so check the path or URL"
_CHECK = "check that the URL names a reachable database and that it is a Switchboard ledger"


class LedgerNotFound(LedgerUnavailable):
    """The URL names no ledger: no such SQLite file, or a database without the ledger's tables."""


class LedgerUnreadable(RuntimeError):
    """An opened ledger failed while a report read it (the database went away, a query failed)."""


def open_ledger(url: str | None = None) -> Ledger:
    """The ledger at `url` (default: $SWITCHBOARD_DATABASE_URL, else the SQLite file under the data dir), created
    and migrated on first use; raises LedgerUnavailable when it cannot be opened."""
    return _ledger_for(url or default_database_url())


@cache
def _ledger_for(url: str) -> Ledger:
    # One ledger (engine and pool) per database per process. Rows an earlier process could not write (the
    # database was away) are written now, before anything reads the ledger to resume a run.
    ledger = Ledger(url=url)
    ledger.replayed = replay_spool(ledger.engine.begin, ledger.url)
    if ledger.replayed is not None:
        log.warning("%s", ledger.replayed.line(url))
    return ledger


def open_existing_ledger(url: str | None = None) -> Engine:
    """An engine on the ledger at `url` (default: as `open_ledger`), which must already exist; raises
    LedgerNotFound or LedgerUnavailable."""
    url = url or default_database_url()
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: e.g. a port that is not a number
        raise LedgerUnavailable(url, f"not a database URL ({exc})", _CHECK) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise LedgerNotFound(url, "it names no ledger file", _NOT_CREATED)
        path = Path(database).expanduser()
        if not path.is_file():
            raise LedgerNotFound(url, f"no ledger at {path}: the file does not exist", _NOT_CREATED)
    engine: Engine | None = None
    try:
        engine = create_ledger_engine(url, migrate_schema=False)
        if not inspect(engine).has_table(_LEDGER_TABLE):
            raise LedgerNotFound(url, f"it is not a Switchboard ledger (it has no {_LEDGER_TABLE} table)", _CHECK)
        migrate(engine)
        return engine
    except LedgerUnavailable:
        if engine is not None:
            engine.dispose()
        raise
    except (SQLAlchemyError, CommandError, ImportError) as exc:  # ImportError: the database's driver is missing
        if engine is not None:
            engine.dispose()
        raise LedgerUnavailable(url, f"cannot open the database: {database_reason(exc)}", _CHECK) from None


def read_failure(url: str, exc: SQLAlchemyError) -> LedgerUnreadable:
    """The error for a ledger that was opened but failed while being read."""
    return LedgerUnreadable(f"cannot read the ledger at {shown_url(url)}: {database_reason(exc)}")


__all__ = ["LedgerNotFound", "LedgerUnreadable", "open_existing_ledger", "open_ledger", "read_failure"]
