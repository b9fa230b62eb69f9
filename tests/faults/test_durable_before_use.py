"""An answer is durable before anyone uses it: a dependent task's provider call starts only once the upstream
answer's attempt row is committed, even when that commit is held up by another connection's write lock (an
SQLite `BEGIN IMMEDIATE`, a PostgreSQL `LOCK TABLE`) taken as the upstream answer is sent. Both shapes of
run: chunked (both tasks in one chunk: `batches.nodes` awaits the commit before starting the dependent) and
per node (the upstream node reports back only once its rows are committed)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ledger import Ledger
from tests.cli.cli_kit import cli_env, switchboard
from tests.fakes.fake_llm_servers import FakeOpenAI, Received, Scripted, chat_completion
from tests.faults.invariants import check_invariants

pytestmark = pytest.mark.slow

HOLD_S = 1.5
SPEC = {
    "name": "durable",
    "tasks": [
        {"id": "up", "type": "code_review", "prompt": "answer:up"},
        {"id": "down", "type": "summarization", "prompt": "answer:down", "depends_on": ["up"]},
    ],
}


def _hold_write_lock(url: str) -> Callable[[], None]:
    """Take a write lock on `provider_usage` from a connection of our own; returns what releases it."""
    if url.startswith("sqlite:///"):
        db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
        db.execute("BEGIN IMMEDIATE")  # readers go on (WAL); every other writer waits

        def release_sqlite() -> None:
            db.execute("ROLLBACK")
            db.close()

        return release_sqlite
    engine = create_engine(url)
    conn = engine.connect()
    conn.execute(text("LOCK TABLE provider_usage IN EXCLUSIVE MODE"))  # plain SELECTs go on, inserts wait

    def release_postgres() -> None:
        conn.rollback()
        conn.close()
        engine.dispose()

    return release_postgres


class LockingOpenAI(FakeOpenAI):
    """Locks the ledger as it answers `up` (released after HOLD_S); when `down` arrives, notes how many of
    `up`'s successful attempt rows the ledger holds."""

    def __init__(self, url: str) -> None:
        super().__init__(auth=None)
        self.ledger_url = url
        self.up_rows_when_down_called: int | None = None
        self.down_prompt = ""
        self._engine = create_engine(url)

    def default(self, request: Received) -> Scripted:
        if request.method != "POST" or not isinstance(request.body, dict):
            return super().default(request)
        prompt = request.body["messages"][-1]["content"]
        if prompt.endswith("answer:up"):
            threading.Timer(HOLD_S, _hold_write_lock(self.ledger_url)).start()
            return Scripted(200, chat_completion("the upstream answer", model="m-1"))
        with self._engine.connect() as conn:
            self.up_rows_when_down_called = conn.execute(
                text("select count(*) from provider_usage where task_id = 'up' and outcome = 'success'")
            ).scalar_one()
        self.down_prompt = prompt
        return Scripted(200, chat_completion("the downstream answer", model="m-1"))

    def close(self) -> None:
        self._engine.dispose()


@pytest.mark.parametrize("mode", ["chunked", "per_node"])
def test_a_dependent_starts_only_after_its_upstream_answer_is_committed(
    tmp_path: Path, database_url: str, mode: str
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    server = LockingOpenAI(database_url)
    with server:
        providers = tmp_path / "providers.yaml"
        providers.write_text(
            f"providers:\n  vendor: {{type: openai_compatible, base_url: '{server.url}/v1', model: m-1}}\n"
        )
        env = cli_env(tmp_path, SWITCHBOARD_DATABASE_URL=database_url)
        result = switchboard("run", str(spec), "--providers", str(providers), "--mode", mode, "--json", env=env)
        server.close()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the upstream answer" in server.down_prompt
    assert server.up_rows_when_down_called == 1, "`down` was called before `up`'s answer was committed"
    ledger = Ledger(url=database_url)
    check_invariants(ledger, json.loads(result.stdout)["run"]["id"], provider_calls=2)
    ledger.close()
