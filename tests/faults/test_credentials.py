"""A credential echoed in a successful answer, or written into a base_url, never reaches the ledger, the
terminal, `--json` or the next task's prompt (sent to another vendor)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from urllib.parse import quote

import pytest

from ledger import Ledger
from tests.cli.cli_kit import cli_env, switchboard
from tests.fakes.fake_llm_servers import FakeOpenAI, Received, Scripted, chat_completion, closed_port_url
from tests.faults.invariants import check_invariants

pytestmark = pytest.mark.slow

KEY = "sk-test/Secret+Key=42:xyz"  # URL-encodes differently from itself
PASSWORD = "pa55word-in-the-url"
COMMON = "model: m-1, api_key_env: LEAKY_KEY"
SECRETS = (KEY, quote(KEY, safe=""), PASSWORD)


class EchoingOpenAI(FakeOpenAI):
    def default(self, request: Received) -> Scripted:
        if request.method == "POST" and isinstance(request.body, dict):
            prompt = request.body["messages"][-1]["content"]
            if prompt.endswith("leak"):
                text = f"your key is {KEY}; in a link: https://x.test/?k={quote(KEY, safe='')}; url pw {PASSWORD}"
                return Scripted(200, chat_completion(text, model="m-1"))
            return Scripted(200, chat_completion("summary without anything", model="m-1"))
        return super().default(request)


def test_echoed_credentials_are_redacted_before_they_are_stored_printed_or_forwarded(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "name": "creds",
                "tasks": [
                    {"id": "leak", "type": "code_review", "prompt": "please leak"},
                    {"id": "next", "type": "summarization", "prompt": "summarize", "depends_on": ["leak"]},
                ],
            }
        )
    )
    dead = closed_port_url().replace("http://", f"http://user:{PASSWORD}@")
    with EchoingOpenAI(auth=None) as vendor:
        live = vendor.url.replace("http://", f"http://user:{PASSWORD}@")
        providers = tmp_path / "providers.yaml"
        providers.write_text(
            "providers:\n"
            f"  gone: {{type: openai_compatible, priority: 1, base_url: '{dead}/v1', {COMMON}}}\n"
            f"  vendor: {{type: openai_compatible, priority: 2, base_url: '{live}/v1', {COMMON}}}\n"
        )
        env = cli_env(tmp_path, LEAKY_KEY=KEY)
        result = switchboard("run", str(spec), "--providers", str(providers), "--json", env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        forwarded = [r.body["messages"][-1]["content"] for r in vendor.requests if r.method == "POST"]
    assert len(forwarded) == 2 and "[redacted]" in forwarded[1]
    summary = json.loads(result.stdout)
    leak = next(t for t in summary["tasks"] if t["id"] == "leak")
    assert leak["attempts"][0]["outcome"] == "unavailable" and "[redacted]" in leak["output"]
    ledger = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    check_invariants(ledger, summary["run"]["id"])
    assert len([a for a in ledger.attempts(summary["run"]["id"]) if a.provider_id == "vendor"]) == len(forwarded)
    ledger.close()
    shown = switchboard("show", summary["run"]["id"], env=env)
    db = sqlite3.connect(tmp_path / "ledger.db")
    stored = [
        str(row) for table in ("tasks", "provider_usage", "providers") for row in db.execute(f"select * from {table}")
    ]
    for secret in SECRETS:
        for where, text in {
            "--json": result.stdout,
            "stderr": result.stderr,
            "show": shown.stdout,
            "next prompt": forwarded[1],
            "ledger": "\n".join(stored),
        }.items():
            assert secret not in text, f"{secret!r} in {where}"
