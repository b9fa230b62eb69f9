"""A ledger URL on SQLite and on PostgreSQL (a schema of the test's own) for fault tests that must hold on both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def database_url(either_database_url: str) -> Iterator[str]:
    yield either_database_url
