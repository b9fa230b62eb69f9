"""A ledger on SQLite and on PostgreSQL (a schema of the test's own) for tests that must hold on both."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from ledger import Ledger, create_ledger_engine
from tests.conftest import postgres_url_or_skip


@pytest.fixture(params=["sqlite", "postgresql"])
def any_ledger(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Ledger]:
    if request.param == "sqlite":
        engine = create_ledger_engine(sqlite_url)
        yield Ledger(engine)
        engine.dispose()
        return
    base = postgres_url_or_skip()
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = create_ledger_engine(base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{schema}")
    yield Ledger(engine)
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()
