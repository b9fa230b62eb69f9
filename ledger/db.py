"""Engines for the ledger database, migrated to the newest schema on first use."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

DATABASE_URL_ENV = "SWITCHBOARD_DATABASE_URL"
HOME_ENV = "SWITCHBOARD_HOME"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_migrate_lock = threading.Lock()


def data_dir() -> Path:
    """Where Switchboard keeps its files: $SWITCHBOARD_HOME, else ~/.switchboard."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".switchboard").expanduser()


def default_database_url() -> str:
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{data_dir() / 'ledger.db'}"


def create_ledger_engine(url: str | None = None, *, migrate_schema: bool = True) -> Engine:
    """An engine for `url` (default: $SWITCHBOARD_DATABASE_URL or the SQLite file), with the schema at head."""
    url = url or default_database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(url)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if migrate_schema:
        migrate(engine)
    return engine


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
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
    """Upgrade the schema to head; cheap when it is already there."""
    head = head_revision()
    if current_revision(engine) == head:
        return
    with _migrate_lock, engine.begin() as conn:
        config = _alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
