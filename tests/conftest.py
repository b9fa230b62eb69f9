"""Shared fixtures: no traffic leaves 127.0.0.1, each test gets its own ledger, Prefect runs under its test harness."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from ledger import Ledger

POSTGRES_ENV = "SWITCHBOARD_TEST_POSTGRES_URL"
# Prefect's servers (the test harness's included) would otherwise run a telemetry service that posts to the
# internet; set before anything imports prefect.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback_only(address: object) -> None:
    if not isinstance(address, tuple):  # unix sockets
        return
    host = str(address[0])
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ConnectionRefusedError(f"tests may only connect to 127.0.0.1; refused {host}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _loopback_only(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _loopback_only(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _block_network() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep tests away from the user's ~/.switchboard and any providers file in their environment."""
    home = tmp_path_factory.mktemp("switchboard-home")
    keys = (
        "SWITCHBOARD_HOME",
        "SWITCHBOARD_DATABASE_URL",
        "SWITCHBOARD_PROVIDERS",
        "SWITCHBOARD_PREFECT",
        "PREFECT_API_URL",
    )
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["SWITCHBOARD_HOME"] = str(home)
    os.environ.pop("SWITCHBOARD_DATABASE_URL", None)
    os.environ.pop("SWITCHBOARD_PROVIDERS", None)
    os.environ.pop("PREFECT_API_URL", None)
    # `switchboard run` subprocesses would otherwise start (and leave running) the managed server on port
    # 4200; tests that want it start their own on a free port (see tests/flows/test_cli.py).
    os.environ["SWITCHBOARD_PREFECT"] = "ephemeral"
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def ledger(sqlite_url: str) -> Iterator[Ledger]:
    """A fresh SQLite ledger, closed after the test (tests/api and others that need another kind define their own)."""
    ledger = Ledger(url=sqlite_url)
    yield ledger
    ledger.close()


@pytest.fixture
def ledger_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite ledger that the default ledger (and the flows) also use."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", url)
    return url


def postgres_url_or_skip() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (.ci/run sets it to the local PostgreSQL)")
    return url


@contextlib.contextmanager
def postgres_schema_url(base: str) -> Iterator[str]:
    """A URL on `base` whose tables live in a fresh schema of their own, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextlib.contextmanager
def postgres_database_url(base: str) -> Iterator[str]:
    """A URL like `base` on a fresh database of its own, dropped afterwards (its connections closed first)."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")  # CREATE DATABASE cannot run in a transaction
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture
def postgres_ledger_url() -> Iterator[str]:
    """A ledger URL on a PostgreSQL schema of the test's own (skipped without PostgreSQL); the URL carries the
    schema, so processes the test starts share it."""
    with postgres_schema_url(postgres_url_or_skip()) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def either_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A ledger URL on SQLite, then on PostgreSQL (a schema of the test's own; skipped without PostgreSQL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    with postgres_schema_url(postgres_url_or_skip()) as url:
        yield url


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Prefect's temporary server, shared by the whole session (it costs ~11 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def real_claude() -> Path:
    """The real Claude Code CLI (a pinned version, installed once per machine with npm into a cache folder
    outside the repository); the test is skipped, with the reason, only when npm cannot install it."""
    from tests.fakes.real_claude import install

    executable, why_not = install()
    if executable is None:
        pytest.skip(why_not)
    return executable
