"""The ledger's schema on demand (`switchboard db upgrade|downgrade|current|history`): Alembic's revisions,
where a database stands, and moving it to another revision, on SQLite and PostgreSQL alike.

Every command that uses the ledger upgrades it to the newest schema on first use (ledger/db.py); these are for
the rest: seeing where a database stands without changing it, upgrading a shared PostgreSQL ledger on purpose
before the workers are, and going back down to run an older Switchboard against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ledger.db import (
    _URL_HINT,
    LedgerUnavailable,
    _alembic_config,
    _engine,
    _migrate_lock,
    current_revision,
    database_reason,
    default_database_url,
)


@dataclass(frozen=True)
class Revision:
    """One migration: its id, the one before it, and the first line of what it does."""

    revision: str
    down_revision: str | None
    summary: str


class SchemaError(Exception):
    """A revision that does not exist, or a move Alembic refuses; nothing was changed."""


def schema_history() -> list[Revision]:
    """Every migration, newest first."""
    script = ScriptDirectory.from_config(_alembic_config())
    return [
        Revision(s.revision, _single(s.down_revision), " ".join((s.doc or "").split("\n\n")[0].split()))
        for s in script.walk_revisions()
    ]


def _single(down: str | tuple[str, ...] | None) -> str | None:
    return down[0] if isinstance(down, tuple) else down


def sqlite_file_missing(url: str) -> Path | None:
    """The SQLite file `url` names, when it does not exist yet (looking must not create it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database).expanduser()
    return None if path.exists() else path


def schema_engine(url: str | None = None) -> Engine:
    """An engine on the ledger database at `url`, connected once to be sure it answers, never migrated;
    LedgerUnavailable when it cannot be reached."""
    url = url or default_database_url()
    try:
        make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise LedgerUnavailable(url, f"not a database URL ({exc})", _URL_HINT) from None
    try:
        engine = _engine(url)
        with engine.connect():
            pass
    except LedgerUnavailable:
        raise
    except (SQLAlchemyError, ImportError) as exc:
        raise LedgerUnavailable(url, f"cannot open the database: {database_reason(exc)}", _URL_HINT) from None
    return engine


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database without the ledger."""
    return current_revision(engine)


def has_ledger_tables(engine: Engine) -> bool:
    return bool(inspect(engine).get_table_names())


def upgrade_schema(engine: Engine, target: str = "head") -> tuple[str | None, str | None]:
    """Move the schema up to `target` (default: the newest); (before, after)."""
    return _move(engine, "upgrade", target)


def downgrade_schema(engine: Engine, target: str) -> tuple[str | None, str | None]:
    """Move the schema down to `target`: a revision id, `-1` (one step), or `base` (no ledger tables left)."""
    return _move(engine, "downgrade", target)


def _move(engine: Engine, direction: str, target: str) -> tuple[str | None, str | None]:
    before = current_revision(engine)
    try:
        with _migrate_lock, engine.begin() as conn:
            config = _alembic_config()
            config.attributes["connection"] = conn
            if direction == "upgrade":
                command.upgrade(config, target)
            else:
                command.downgrade(config, target)
    except CommandError as exc:  # an unknown revision, a relative step past either end
        known = ", ".join(sorted(r.revision for r in schema_history()))
        raise SchemaError(
            f"cannot {direction} to {target!r}: {exc} (revisions: {known}; also head, base, -1)"
        ) from None
    return before, current_revision(engine)


__all__ = [
    "Revision",
    "SchemaError",
    "downgrade_schema",
    "has_ledger_tables",
    "schema_engine",
    "schema_history",
    "schema_revision",
    "sqlite_file_missing",
    "upgrade_schema",
]
