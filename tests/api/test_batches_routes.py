"""Batches through the API: a spec (JSON or YAML) runs as a Prefect flow run of the API's own when there is no
deployment, is listed and read back, and is cancelled the way the Prefect UI does."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest

from tests.api.api_kit import ADMIN_TOKEN, READ_TOKEN, auth

pytestmark = pytest.mark.slow
# The API's own flow runs use Prefect's temporary server here (SWITCHBOARD_PREFECT=ephemeral, tests/conftest.py):
# give it time to start on a busy machine, before anything imports Prefect's settings.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

SPEC_YAML = """name: api-batch
tasks:
  - {id: plan, type: code_analysis, prompt: "Outline"}
  - {id: review, type: code_review, prompt: "Review", depends_on: [plan]}
"""


async def _until_finished(client: httpx.AsyncClient, run_id: str) -> dict:
    async with asyncio.timeout(120):
        while True:
            run = (await client.get(f"/api/v1/batches/{run_id}", headers=auth(READ_TOKEN))).json()
            if run["run"]["status"] != "running":
                return run
            await asyncio.sleep(0.5)


async def test_a_yaml_spec_runs_as_a_flow_run_of_the_apis_own_and_is_read_back(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/batches", content=SPEC_YAML, headers={**auth(ADMIN_TOKEN), "content-type": "application/yaml"}
    )
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["via"] == "api" and started["run_id"].startswith("r")
    run = await _until_finished(client, started["run_id"])
    assert run["run"]["status"] == "completed" and run["run"]["name"] == "api-batch"
    assert [t["status"] for t in run["tasks"]] == ["completed", "completed"]
    assert run["run"]["flow_run_id"] and run["run"]["ui_url"].endswith(run["run"]["flow_run_id"])
    assert run["tasks"][0]["decision"]["chosen"] == "fast"
    listed = (await client.get("/api/v1/batches", headers=auth(READ_TOKEN))).json()
    assert [b["id"] for b in listed] == [started["run_id"]]  # the API's own day run is not a batch
    cancel = await client.post(f"/api/v1/batches/{started['run_id']}/cancel", headers=auth(ADMIN_TOKEN))
    assert cancel.status_code == 202 and cancel.json()["outcome"] == "already_ended"


async def test_an_invalid_spec_is_a_422_naming_the_task_and_field(client: httpx.AsyncClient) -> None:
    spec = {"name": "bad", "tasks": [{"id": "a", "type": "t", "prompt": "p", "depends_on": ["nope"]}]}
    r = await client.post("/api/v1/batches", json=spec, headers=auth(ADMIN_TOKEN))
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == "tasks[0] (id 'a').depends_on: unknown task 'nope'"
    bad_yaml = await client.post(
        "/api/v1/batches", content="name: [", headers={**auth(ADMIN_TOKEN), "content-type": "application/yaml"}
    )
    assert bad_yaml.status_code == 422 and "not valid YAML" in bad_yaml.json()["detail"][0]["msg"]


async def test_unknown_runs_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/batches/r-nope", headers=auth(READ_TOKEN))).status_code == 404
    assert (await client.post("/api/v1/batches/r-nope/cancel", headers=auth(ADMIN_TOKEN))).status_code == 404
