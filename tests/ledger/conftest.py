"""A ledger on SQLite and on PostgreSQL (a schema of the test's own) for tests that must hold on both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from ledger import Ledger, create_ledger_engine


@pytest.fixture
def engine(either_database_url: str) -> Iterator[Engine]:
    """A migrated ledger engine on SQLite, then on PostgreSQL."""
    engine = create_ledger_engine(either_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def any_ledger(engine: Engine) -> Ledger:
    return Ledger(engine)
