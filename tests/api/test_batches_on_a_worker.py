"""The HTTP API's batch routes against a real Prefect worker: POST /batches goes through the `process-batch`
deployment when Prefect has it, and POST /batches/{id}/cancel stops the run as the Prefect UI's Cancel does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL, temporary_settings

from api import TokenSet, create_app
from ledger import open_ledger
from routing import parse_config
from tests.api.api_kit import ADMIN_TOKEN, auth
from tests.cli.test_cancel import db, write_batch
from tests.flows import test_worker_cancel as on_worker
from tests.flows.prefect_kit import final_flow_run

pytestmark = pytest.mark.slow
stack = on_worker.stack  # a Prefect server with the process-batch deployment and a worker on its pool


@pytest.fixture
def worker_prefect(stack: dict[str, Any]) -> Iterator[None]:
    """This process's Prefect settings pointed at the worker's server (the session's test harness may hold them)."""
    with temporary_settings(updates={PREFECT_API_URL: stack["api_url"]}):
        yield


async def test_the_http_api_runs_a_batch_through_the_deployment_and_cancels_it(
    stack: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker_prefect: None
) -> None:
    """POST /batches goes through the `process-batch` deployment when Prefect has it (a worker runs it), and
    POST /batches/{id}/cancel stops it as the Prefect UI's Cancel does."""
    env, ledger_dir = stack["env"], stack["tmp"]
    for key in ("PREFECT_API_URL", "PREFECT_HOME", "SWITCHBOARD_HOME", "SWITCHBOARD_DATABASE_URL"):
        monkeypatch.setenv(key, env[key])
    _, slow, _ = write_batch(tmp_path, 0)
    tasks = [{"id": f"a{n:03d}", "type": "code_review", "prompt": f"part {n}"} for n in range(80)]
    app = create_app(
        parse_config(yaml.safe_load(slow.read_text()), str(slow)),
        open_ledger(env["SWITCHBOARD_DATABASE_URL"]),
        TokenSet([("ops", "admin", ADMIN_TOKEN)]),
    )
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            started = await client.post(
                "/api/v1/batches", json={"name": "api-cancel", "tasks": tasks}, headers=auth(ADMIN_TOKEN)
            )
            assert started.status_code in (200, 201, 202), started.text
            assert started.json()["via"] == "deployment", started.json()
            flow_run_id = started.json()["flow_run_id"]

            conn = db(ledger_dir)
            deadline, run_id, calls = time.monotonic() + 180, None, 0
            while time.monotonic() < deadline and calls < 6:
                await asyncio.sleep(0.3)
                row = conn.execute("select run_id from runs where flow_run_id = ?", (flow_run_id,)).fetchone()
                run_id = row[0] if row else None
                calls = conn.execute("select count(*) from provider_usage where run_id = ?", (run_id,)).fetchone()[0]
            assert run_id is not None and calls >= 6, stack["worker_log"].read_text()[-3000:]

            cancelled = await client.post(f"/api/v1/batches/{run_id}/cancel", headers=auth(ADMIN_TOKEN))
            assert cancelled.status_code == 202, cancelled.text
    finally:
        app.state.switchboard.close()

    final = (await asyncio.to_thread(final_flow_run, stack["api_url"], flow_run_id, 120)).state
    assert final.type == StateType.CANCELLED, (final, stack["worker_log"].read_text()[-3000:])
    deadline = time.monotonic() + 30
    while conn.execute("select status from runs where run_id = ?", (run_id,)).fetchone()[0] == "running":
        assert time.monotonic() < deadline, "the run was not ended"
        await asyncio.sleep(0.2)
    assert conn.execute("select status from runs where run_id = ?", (run_id,)).fetchone()[0] == "cancelled"
    statuses = {s for (s,) in conn.execute("select status from tasks where run_id = ?", (run_id,))}
    assert statuses == {"completed", "cancelled"}, statuses  # 80 tasks at 2 x 400 ms: far from done
