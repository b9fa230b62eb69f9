"""The response cache end to end, on SQLite and on PostgreSQL: with `cache: {enabled: true}` in the providers
file, a second run of the same spec answers its tasks from the first run's answers without calling the provider
(calls counted on a local OpenAI-compatible stand-in), at $0; `run --json` counts the hits and what they saved,
the usage report shows the saving, a `cache: false` task is called again, and the fault invariants hold with the
hits left out of the provider calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger import CACHE_PROVIDER, Ledger, create_ledger_engine
from tests.cli.cli_kit import cli_env, switchboard
from tests.fakes.fake_llm_servers import FakeOpenAI
from tests.faults.invariants import check_invariants

pytestmark = pytest.mark.slow

SPEC = {
    "name": "cached",
    "team": "platform",
    "tasks": [
        {"id": "map", "type": "code_analysis", "prompt": "Map the repository"},
        {"id": "review", "type": "code_review", "prompt": "Review PR 1", "depends_on": ["map"]},
        {"id": "fresh", "type": "code_review", "prompt": "Review PR 2", "cache": False},
    ],
}


def _calls(server: FakeOpenAI) -> int:
    return sum(1 for r in server.requests if r.method == "POST")


def test_a_second_run_is_answered_from_the_cache_at_no_cost(tmp_path: Path, database_url: str) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    with FakeOpenAI(auth=None) as server:
        providers = tmp_path / "providers.yaml"
        providers.write_text(
            "cache: {enabled: true, ttl_s: 3600}\n"
            "providers:\n"
            f"  api: {{type: openai_compatible, base_url: '{server.url}/v1', model: gpt-test,"
            " prices: {'*': {input: 1000.0, output: 2000.0}}}\n"
        )
        env = cli_env(tmp_path, SWITCHBOARD_DATABASE_URL=database_url)
        args = ("run", str(spec), "--providers", str(providers), "--json", "--fresh")
        first = switchboard(*args, env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        one = json.loads(first.stdout)
        assert _calls(server) == 3 and one["totals"]["cache_hits"] == 0

        second = switchboard(*args, "--explain", env=env)
        assert second.returncode == 0, second.stderr[-3000:]
        two = json.loads(second.stdout)
        assert _calls(server) == 4  # only `fresh` (cache: false) was asked again
        tasks = {t["id"]: t for t in two["tasks"]}
        for task_id in ("map", "review"):
            task = tasks[task_id]
            assert task["provider"] == CACHE_PROVIDER and task["cost_usd"] == 0.0, task
            assert task["output"] == next(t["output"] for t in one["tasks"] if t["id"] == task_id)
            assert task["attempts"][0]["outcome"] == "success" and task["attempts"][0]["cache_saved_usd"] > 0
            assert task["decision"]["cache"]["run_id"] == one["run"]["id"]
        assert tasks["fresh"]["provider"] == "api" and "cache_saved_usd" not in tasks["fresh"]["attempts"][0]
        saved = sum(t["cost_usd"] for t in one["tasks"] if t["id"] != "fresh")
        assert two["totals"]["cache_hits"] == 2
        assert two["totals"]["cache_savings_usd"] == pytest.approx(saved)
        assert two["totals"]["cost_usd"] == pytest.approx(tasks["fresh"]["cost_usd"])

        engine = create_ledger_engine(database_url)
        ledger = Ledger(engine)
        check_invariants(ledger, one["run"]["id"], provider_calls=3)
        check_invariants(ledger, two["run"]["id"], provider_calls=1)  # the two hits are not calls
        engine.dispose()

    shown = switchboard("report", "--since", "1h", "--format", "json", env=env)
    assert shown.returncode == 0, shown.stderr[-3000:]
    totals = json.loads(shown.stdout)["totals"]
    assert totals["cache_hits"] == 2 and totals["cache_savings_usd"] == pytest.approx(saved)
