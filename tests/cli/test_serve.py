"""`switchboard serve` starts the API on uvicorn, and refuses to start without a token."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.cli.cli_kit import ROOT, cli_env, one_error_line, switchboard
from tests.ports import free_port


def test_serve_answers_with_a_token_and_refuses_without(tmp_path: Path) -> None:
    port = free_port()
    env = cli_env(tmp_path, SWITCHBOARD_API_TOKEN="serve-token-123456")
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "serve did not answer within 60 s"
            time.sleep(0.2)
        assert httpx.get(f"{base}/api/v1/providers").status_code == 401
        r = httpx.get(f"{base}/api/v1/providers", headers={"Authorization": "Bearer serve-token-123456"})
        assert r.status_code == 200
        assert [p["id"] for p in r.json()["providers"]] == ["mock_primary", "mock_backup"]
        assert r.json()["providers"][0]["source"] == "builtin"
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/api/v1" in out
    assert "serve-token-123456" not in out + err


def test_serve_without_any_token_exits_2_saying_how_to_give_one(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    env.pop("SWITCHBOARD_API_TOKEN", None)
    done = switchboard("serve", "--port", str(free_port()), env=env)
    assert done.returncode == 2
    assert "SWITCHBOARD_API_TOKEN" in one_error_line(done.stderr)


def test_serve_names_a_token_variable_that_is_unset(tmp_path: Path) -> None:
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        "providers: {m: {type: local_mock}}\napi: {tokens: [{name: oncall, scope: read, token_env: SB_NO_SUCH_VAR}]}\n"
    )
    done = switchboard("serve", "--providers", str(providers), env=cli_env(tmp_path))
    assert done.returncode == 2
    assert "api.tokens (oncall).token_env: SB_NO_SUCH_VAR is not set" in one_error_line(done.stderr)


def test_switchboard_providers_shows_which_providers_come_from_the_api(tmp_path: Path) -> None:
    from ledger import open_ledger, set_provider_overlay

    env = cli_env(tmp_path)
    ledger = open_ledger(env["SWITCHBOARD_DATABASE_URL"])
    set_provider_overlay(
        ledger, "mock_backup", {"type": "local_mock", "priority": 9}, who="ops", action="provider.update"
    )
    set_provider_overlay(ledger, "extra", {"type": "local_mock"}, who="ops", action="provider.create")
    set_provider_overlay(ledger, "mock_primary", None, who="ops", action="provider.delete")
    done = switchboard("providers", "--json", env=env)
    assert done.returncode == 0, done.stderr
    listed = {p["id"]: (p["source"], p["priority"]) for p in json.loads(done.stdout)["providers"]}
    assert listed == {"mock_backup": ("api", 9), "extra": ("api", 5)}  # mock_primary removed through the API
    table = switchboard("providers", env=env)
    assert "from the API" in table.stdout
