"""Fixtures for analytics tests: an engine per test on SQLite, and on PostgreSQL when it is configured."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from ledger import create_ledger_engine
from tests.conftest import postgres_url_or_skip


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = create_ledger_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    """A ledger in its own PostgreSQL schema, so figures never mix with other tests' rows."""
    base = postgres_url_or_skip()
    schema = f"a_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_ledger_engine(base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{schema}")
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()
