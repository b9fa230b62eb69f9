"""Fixtures for analytics tests: an engine per test on SQLite, and on PostgreSQL when it is configured."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from ledger import create_ledger_engine


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = create_ledger_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(postgres_ledger_url: str) -> Iterator[Engine]:
    """A ledger in its own PostgreSQL schema, so figures never mix with other tests' rows."""
    engine = create_ledger_engine(postgres_ledger_url)
    yield engine
    engine.dispose()
