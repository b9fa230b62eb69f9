"""Engines for the ledger database, migrated to the newest schema on first use.

Opening the ledger for use (`create_ledger_engine` with `migrate_schema=True`, which `Ledger` does) connects at
once, so a ledger that cannot be used fails there, before anything runs, as one `LedgerUnavailable` naming the
setting at fault, the reason and what to do, never as a driver's traceback.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.pool import ConnectionPoolEntry

DATABASE_URL_ENV = "SWITCHBOARD_DATABASE_URL"
HOME_ENV = "SWITCHBOARD_HOME"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_migrate_lock = threading.Lock()
# pg_advisory_xact_lock's key for migrations (any fixed 64-bit number; "sbmigrat" in ASCII).
MIGRATION_LOCK_KEY = 0x73626D6967726174


def data_dir() -> Path:
    """Where Switchboard keeps its files: $SWITCHBOARD_HOME, else ~/.switchboard."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".switchboard").expanduser()


def default_database_url() -> str:
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{data_dir() / 'ledger.db'}"


class LedgerUnavailable(Exception):
    """The ledger database cannot be opened: a malformed URL, an unknown database or driver, a server that
    does not answer, a file that cannot be created or is not a database. Nothing has been run or written."""

    def __init__(self, url: str, reason: str, hint: str) -> None:
        self.url, self.reason, self.hint = shown_url(url), reason, hint
        super().__init__(f"{_setting(url)}: {reason}; {hint}")


class LedgerLost(RuntimeError):
    """The ledger could not be reached in the middle of a run; what it did not take is in the spool."""

    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = shown_url(url), reason
        super().__init__(f"the ledger at {self.url} could not be reached: {reason}")


def out_of_reach(error: BaseException) -> bool:
    """The database, not one row, is the problem: connection lost or refused, server gone, database locked."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError | InterfaceError)


def short_error(error: BaseException) -> str:
    """An error in one line for a warning: its class and the first line of its message."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first[:200]}" if first else type(error).__name__


def shown_url(url: str) -> str:
    """The URL as it is safe to print: any password masked, even in a URL SQLAlchemy cannot parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _setting(url: str) -> str:
    """Which setting chose this database, so the message says what to change."""
    if os.environ.get(DATABASE_URL_ENV) == url:
        return f"{DATABASE_URL_ENV}={shown_url(url)}"
    if url == default_database_url():
        return f"the ledger {shown_url(url)} (under ${HOME_ENV} or ~/.switchboard)"
    return f"the ledger {shown_url(url)}"


def create_ledger_engine(url: str | None = None, *, migrate_schema: bool = True) -> Engine:
    """An engine for `url` (default: $SWITCHBOARD_DATABASE_URL or the SQLite file), with the schema at head.

    With `migrate_schema` (opening the ledger for use) any failure to reach it raises LedgerUnavailable.
    Without it the engine is returned unconnected, and a caller that inspects the database itself (the
    read-only reports) gets SQLAlchemy's own errors to classify.
    """
    url = url or default_database_url()
    if not migrate_schema:
        return _engine(url)
    try:
        make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: e.g. a port that is not a number
        raise LedgerUnavailable(url, f"not a database URL ({exc})", _URL_HINT) from None
    try:
        engine = _engine(url)
        migrate(engine)
    except LedgerUnavailable:
        raise
    except NoSuchModuleError:
        raise LedgerUnavailable(url, f"unknown database type {_scheme(url)!r}", _URL_HINT) from None
    except ImportError as exc:
        raise LedgerUnavailable(
            url,
            f"the database driver for {_scheme(url)!r} is not installed ({exc})",
            "for PostgreSQL install the `postgres` extra (pip install 'switchboard[postgres]') and use "
            "postgresql+psycopg://; for another database, install its driver",
        ) from None
    except CommandError as exc:  # e.g. a ledger migrated by a newer Switchboard than this one
        raise LedgerUnavailable(
            url,
            f"its schema cannot be brought to this version's ({exc})",
            "upgrade Switchboard to the version that last wrote this ledger, or point at another ledger",
        ) from None
    except SQLAlchemyError as exc:
        raise LedgerUnavailable(
            url, f"cannot open the database: {database_reason(exc)}", _SERVER_HINT if _is_server(url) else _FILE_HINT
        ) from None
    return engine


_URL_HINT = (
    "use a SQLAlchemy URL such as sqlite:////path/to/ledger.db or postgresql+psycopg://user:password@host:5432/db, "
    f"or unset {DATABASE_URL_ENV} for the default ledger"
)
_SERVER_HINT = (
    "check that the database server is running and that the host, port, user, password and database are right"
)
_FILE_HINT = "check that the path names a writable folder and that the file, if it exists, is a Switchboard ledger"


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else url


def _is_server(url: str) -> bool:
    return make_url(url).get_backend_name() != "sqlite"


def database_reason(exc: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's statement dump and documentation link."""
    original = getattr(exc, "orig", None)
    lines = str(original if original is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_dialect().is_async:  # it would fail on first use with a puzzling greenlet error
        raise LedgerUnavailable(
            url,
            f"{_scheme(url)!r} names an asyncio driver, which the ledger cannot use",
            "use a synchronous driver, e.g. postgresql+psycopg:// or sqlite:///",
        )
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        folder = Path(database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerUnavailable(url, f"cannot create the folder {folder}: {exc.strerror}", _FILE_HINT) from None
    # Threads of one process share the file; a generous busy timeout lets concurrent writers queue.
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: object, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
        # WAL lets readers (reports, `switchboard show`) work while a batch writes; NORMAL sync is durable
        # against process crashes, which is what an attempt row must survive.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Upgrade the schema to head; cheap when it is already there.

    Serialized across processes, so N workers starting together on a fresh database all come up (without it,
    two processes creating the same tables at once fail, e.g. PostgreSQL's `duplicate key value violates unique
    constraint "pg_type_typname_nsp_index"`): on PostgreSQL a transaction-level advisory lock taken on the
    migrating connection itself; on SQLite an exclusive `fcntl` lock on a file next to the database (SQLite runs
    each DDL statement in a transaction of its own, so the database's own lock cannot hold a whole migration).
    The revision is read again once the lock is held: whoever waited finds the work done.
    """
    head = head_revision()
    if current_revision(engine) == head:
        return
    with _migrate_lock, _file_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


@contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on `<database>.migrate.lock` for a SQLite file; nothing for other databases."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    path = Path(database).expanduser()
    with open(path.with_name(path.name + ".migrate.lock"), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
