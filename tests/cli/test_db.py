"""`switchboard db upgrade|downgrade|current|history` as a user runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ledger import head_revision, schema_history
from tests.cli.cli_kit import cli_env, one_error_line, switchboard
from tests.conftest import postgres_url_or_skip


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    base = postgres_url_or_skip()
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _current(env: dict[str, str]) -> str | None:
    result = switchboard("db", "current", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["current"]


def test_up_down_and_where_it_stands(tmp_path: Path, url: str) -> None:
    env = cli_env(tmp_path, SWITCHBOARD_DATABASE_URL=url)
    head = head_revision()
    previous = schema_history()[1].revision
    assert _current(env) is None
    up = switchboard("db", "upgrade", env=env)
    assert up.returncode == 0 and up.stdout.strip().endswith(f"none (no ledger tables) -> {head}")
    assert _current(env) == head
    down = switchboard("db", "downgrade", "-1", env=env)
    assert down.returncode == 0 and down.stdout.strip().endswith(f"{head} -> {previous}")
    shown = switchboard("db", "current", env=env)
    assert shown.stdout.strip().endswith(f"{previous} (head is {head}; `switchboard db upgrade` moves it there)")
    listing = switchboard("db", "history", env=env).stdout.splitlines()
    assert listing[0].startswith(f"{previous} -> {head} (head)")
    assert listing[1].startswith(f"{schema_history()[2].revision} -> {previous} (current)")
    assert switchboard("db", "downgrade", "base", env=env).returncode == 0
    assert _current(env) is None
    assert switchboard("db", "upgrade", previous, env=env).returncode == 0
    assert _current(env) == previous


def test_bad_revision_and_bad_url_exit_2_in_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    assert switchboard("db", "upgrade", env=env).returncode == 0
    bad = switchboard("db", "downgrade", "nope", env=env)
    assert bad.returncode == 2 and "cannot downgrade to 'nope'" in one_error_line(bad.stderr)
    unreachable = switchboard("db", "current", "--url", "postgresql+psycopg://u:secret@127.0.0.1:1/x", env=env)
    line = one_error_line(unreachable.stderr)
    assert unreachable.returncode == 2 and "cannot open the database" in line and "secret" not in line


def test_looking_at_a_missing_sqlite_ledger_does_not_create_it(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    result = switchboard("db", "current", env=env)
    assert result.returncode == 0 and "no ledger yet" in result.stdout
    assert switchboard("db", "history", env=env).returncode == 0
    down = switchboard("db", "downgrade", "-1", env=env)
    assert down.returncode == 2 and "nothing to downgrade" in down.stderr
    assert not (tmp_path / "ledger.db").exists()
