"""The ledger's schema moved by hand (`switchboard db`), on SQLite and PostgreSQL (a schema of its own per test):
every migration goes up and comes back down, and the ledger at head is exactly the models' schema."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from ledger import (
    SchemaError,
    downgrade_schema,
    head_revision,
    schema_engine,
    schema_history,
    schema_revision,
    upgrade_schema,
)
from ledger.models import Base


@pytest.fixture
def database(either_database_url: str) -> Iterator[tuple[str, Engine]]:
    """An empty database (no migration run yet) on SQLite, then on PostgreSQL: its URL and an engine on it."""
    engine = schema_engine(either_database_url)
    yield either_database_url, engine
    engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def _columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def test_history_is_one_chain_from_base_to_head() -> None:
    revisions = schema_history()
    assert revisions[0].revision == head_revision()
    assert revisions[-1].down_revision is None
    for newer, older in itertools.pairwise(revisions):
        assert newer.down_revision == older.revision
    assert all(r.summary for r in revisions)


def test_every_step_up_and_down(database: tuple[str, Engine]) -> None:
    _, engine = database
    chain = [r.revision for r in reversed(schema_history())]
    assert schema_revision(engine) is None and _tables(engine) == set()
    shapes: dict[str, tuple[set[str], set[str]]] = {}
    for revision in chain:
        _, after = upgrade_schema(engine, revision)
        assert after == revision
        engine.dispose()  # a fresh connection sees the new schema (SQLite caches it per connection)
        shapes[revision] = (_tables(engine), _columns(engine, "runs"))
    assert "owner" in shapes["0004"][1] and "owner" not in shapes["0003"][1]
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []  # head is exactly the models
    for revision in reversed(chain[:-1]):
        _, after = downgrade_schema(engine, "-1")
        assert after == revision
        engine.dispose()
        assert (_tables(engine), _columns(engine, "runs")) == shapes[revision]
    assert downgrade_schema(engine, "base")[1] is None
    engine.dispose()
    assert _tables(engine) == set()
    assert upgrade_schema(engine)[1] == head_revision()


def test_data_survives_a_down_and_up_of_the_last_step(database: tuple[str, Engine]) -> None:
    _, engine = database
    upgrade_schema(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (run_id, batch_name, batch_hash, status, strategy, started_at) "
                "VALUES ('r1', 'b', 'h', 'completed', 'priority_based', CURRENT_TIMESTAMP)"
            )
        )
    downgrade_schema(engine, "-1")
    upgrade_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT run_id FROM runs")).scalars().all() == ["r1"]


def test_an_unknown_revision_is_refused_and_nothing_changes(database: tuple[str, Engine]) -> None:
    _, engine = database
    upgrade_schema(engine)
    with pytest.raises(SchemaError, match=r"cannot downgrade to 'zzz': .*revisions: 0001, 0002"):
        downgrade_schema(engine, "zzz")
    assert schema_revision(engine) == head_revision()
