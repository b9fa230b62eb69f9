"""Provider routes: what they list, live health per provider, usage as the report computes it, no secret out."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from tests.api.api_kit import ADMIN_TOKEN, PROVIDER_SECRET, PROVIDERS, READ_TOKEN, URL_PASSWORD, auth


async def test_healthz_is_open(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "providers": 3}


async def test_providers_lists_config_capabilities_and_live_status(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/providers", headers=auth(READ_TOKEN))
    assert r.status_code == 200
    body = r.json()
    assert [p["id"] for p in body["providers"]] == ["fast", "backup", "remote"]
    fast, _, remote = body["providers"]
    assert fast["source"] == "file" and fast["priority"] == 1 and fast["capabilities"] is None
    assert fast["limits"] == {"requests_per_hour": 5}
    assert fast["status"]["circuit"]["state"] == "unknown"
    assert fast["status"]["quota"][0]["limits"][0]["name"] == "requests_per_hour"
    assert remote["capabilities"] == ["summarization"]
    assert remote["api_key_env"] == "SB_TEST_REMOTE_KEY" and remote["api_key"] == "set"
    assert remote["base_url"] == "http://127.0.0.1:9/v1"


async def test_one_provider_and_unknown_ones(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/providers/backup", headers=auth(READ_TOKEN))
    assert r.status_code == 200 and r.json()["model"] == "mock-2"
    missing = await client.get("/api/v1/providers/nope", headers=auth(READ_TOKEN))
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    missing = await client.get("/api/v1/providers/nope/health", headers=auth(READ_TOKEN))
    assert missing.status_code == 404


async def test_health_shows_quota_use_and_forecast_after_calls(client: httpx.AsyncClient) -> None:
    for i in range(3):
        r = await client.post(
            "/api/v1/tasks", json={"type": "code_review", "prompt": f"review {i}"}, headers=auth(ADMIN_TOKEN)
        )
        assert r.status_code == 200, r.text
    health = (await client.get("/api/v1/providers/fast/health", headers=auth(READ_TOKEN))).json()
    assert health["circuit"]["state"] == "closed"
    assert health["circuit"]["error_rate"] == 0.0
    (limit,) = health["quota"][0]["limits"]
    assert limit["name"] == "requests_per_hour" and limit["used"] == 3 and limit["limit"] == 5
    assert limit["utilization"] == pytest.approx(0.6)
    assert limit["exhausted_in_s"] is not None and limit["exhausted_in_s"] > 0  # 3 calls in a second: soon
    assert health["forecast"]["name"] == "requests_per_hour"
    assert health["latency_ms"] is not None


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/providers",
        "/api/v1/providers/remote",
        "/api/v1/providers/remote/health",
        "/api/v1/providers/usage",
        "/openapi.json",
    ],
)
async def test_no_route_returns_a_secret(client: httpx.AsyncClient, path: str) -> None:
    await client.post(
        "/api/v1/tasks",
        json={"type": "summarization", "prompt": "sum", "provider": "remote"},
        headers=auth(ADMIN_TOKEN),
    )
    r = await client.get(path, headers=auth(ADMIN_TOKEN))
    assert r.status_code == 200
    for secret in (PROVIDER_SECRET, URL_PASSWORD, ADMIN_TOKEN, READ_TOKEN):
        assert secret not in r.text


async def test_usage_has_the_same_numbers_as_the_report_command(
    client: httpx.AsyncClient, ledger_url: str, tmp_path: Path
) -> None:
    for i in range(4):
        await client.post(
            "/api/v1/tasks",
            json={"type": "code_review", "prompt": f"p{i}", "team": "a" if i % 2 else "b"},
            headers=auth(ADMIN_TOKEN),
        )
    # One window for both, so nothing measured against "now" differs.
    until = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    window = {"since": "1d", "until": until}
    api_doc = (await client.get("/api/v1/providers/usage", params=window, headers=auth(READ_TOKEN))).json()
    grouped = await client.get(
        "/api/v1/providers/usage", params={**window, "group_by": "team"}, headers=auth(READ_TOKEN)
    )
    assert set(grouped.json()) == {"period", "totals", "by_team"}
    assert grouped.json()["by_team"] == api_doc["by_team"]
    providers = tmp_path / "providers.yaml"
    providers.write_text(yaml.safe_dump(PROVIDERS))
    env = dict(os.environ, SWITCHBOARD_DATABASE_URL=ledger_url)
    command = [str(Path(sys.executable).parent / "switchboard"), "report", "--since", "1d", "--until", until]
    cli = await asyncio.to_thread(
        subprocess.run,
        [*command, "--format", "json", "--providers", str(providers)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    cli_doc = json.loads(cli.stdout)
    assert api_doc["totals"]["attempts"] == 4
    assert api_doc == cli_doc


async def test_usage_refuses_a_bad_window(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/providers/usage", params={"since": "soon"}, headers=auth(READ_TOKEN))
    assert r.status_code == 422 and "--since" in r.json()["detail"][0]["msg"]
