"""What the live feed's snapshot carries besides providers: recent failovers with their reasons, and batch runs
with their progress and their page in the Prefect UI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from batches import parse_spec, start_run
from ledger import Ledger
from tests.api.api_kit import ADMIN_TOKEN, auth


async def test_the_snapshot_has_recent_failovers_and_batch_runs(
    make_client: Callable[[dict[str, Any]], httpx.AsyncClient],
    providers_doc: dict[str, Any],
    ledger: Ledger,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4999/api")
    providers_doc["providers"]["flaky"] = {"type": "local_mock", "priority": 0, "latency_ms": 0, "failure_rate": 1.0}
    spec = parse_spec({"name": "nightly", "tasks": [{"id": "a", "type": "t", "prompt": "p"}]}, "s")
    run_id, _ = start_run(ledger, spec, "priority_based", fresh=True)
    ledger.set_flow_run_id(run_id, "0f0f0f0f-0000-0000-0000-000000000000")
    async with make_client(providers_doc) as c:
        task = (await c.post("/api/v1/tasks", json={"type": "t", "prompt": "p"}, headers=auth(ADMIN_TOKEN))).json()
        feed = c._transport.app.state.feed  # type: ignore[attr-defined]
        snapshot = await feed.snapshot()
    (failover,) = snapshot["failovers"]
    assert (failover["from"], failover["to"], failover["reason"]) == ("flaky", "fast", "unavailable (simulated)")
    assert f"{failover['run_id']}:{failover['task_id']}" == task["id"]
    (run,) = snapshot["runs"]  # the API's own day run is not a batch
    assert run["id"] == run_id and run["status"] == "running" and run["tasks"] == {"pending": 1}
    assert run["ui_url"] == "http://127.0.0.1:4999/runs/flow-run/0f0f0f0f-0000-0000-0000-000000000000"
