"""A batch through the real `switchboard run` where the stand-ins play the services.

The fake `claude` is on PATH; fake Anthropic and OpenAI servers listen on 127.0.0.1 in this process and the
CLI subprocess calls them. Tasks form a chain so each runs alone and routing is deterministic; capabilities
send each task type to a known provider, and one Anthropic endpoint answers 529 so its task fails over.
Token counts and costs are checked exactly, in the `--json` output and in the ledger's rows.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from providers import Price, TokenUsage
from tests.fakes.claude_harness import FakeCli
from tests.fakes.fake_llm_servers import (
    FakeAnthropic,
    FakeOpenAI,
    Scripted,
    anthropic_error,
    anthropic_message,
    anthropic_ratelimit_headers,
    chat_completion,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

ANTHROPIC_KEY = "sk-ant-api03-E2E-ANTHROPIC-1111111111"
OPENAI_KEY = "sk-proj-E2E-OPENAI-2222222222"
TEAM_B_KEY = "sk-ant-api03-E2E-TEAM-B-3333333333"

# What each stand-in reports, and what it must cost.
REVIEW_USAGE = {
    "input_tokens": 210,
    "output_tokens": 95,
    "cache_read_input_tokens": 14135,
    "cache_creation_input_tokens": 7192,
}
REVIEW_COST = 0.0412  # the CLI's own total_cost_usd is taken as is (as the list price, on a login)
FIX_FAILED_USAGE = {
    "input_tokens": 40,
    "output_tokens": 12,
    "cache_read_input_tokens": 500,
    "cache_creation_input_tokens": 0,
}
FIX_FAILED_COST = 0.0031  # an API error after some turns: already billed
FIX_USAGE = {
    "input_tokens": 77,
    "output_tokens": 33,
    "cache_read_input_tokens": 900,
    "cache_creation_input_tokens": 100,
}
FIX_COST = 0.0023
SUMMARY_USAGE = {
    "input_tokens": 100,
    "output_tokens": 50,
    "cache_read_input_tokens": 2000,
    "cache_creation_input_tokens": 300,
}
SONNET_45 = Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)
# OpenAI counts cached tokens inside prompt_tokens; the ledger keeps them apart.
PR_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 80,
    "total_tokens": 1280,
    "prompt_tokens_details": {"cached_tokens": 1000},
    "completion_tokens_details": {"reasoning_tokens": 30},
}
SONNET_ID = "claude-sonnet-4-5-20250929"  # what the stand-ins answer with
GPT_4O = Price(input=2.5, output=10.0, cache_read=1.25)

SPEC = {
    "name": "stand-ins",
    "team": "platform",
    "tasks": [
        {"id": "review", "type": "code_review", "prompt": "Review the diff"},
        {"id": "fix", "type": "bug_fix", "prompt": "Fix the bug", "depends_on": ["review"]},
        {"id": "summary", "type": "summarization", "prompt": "Summarize", "depends_on": ["fix"]},
        {"id": "pr", "type": "pr_review", "prompt": "Review PR 7", "depends_on": ["summary"]},
    ],
}


@pytest.fixture
def anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=ANTHROPIC_KEY) as server:
        yield server


@pytest.fixture
def anthropic_down() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=ANTHROPIC_KEY) as server:
        server.script(*[anthropic_error(529, "overloaded_error", "Overloaded") for _ in range(10)])
        yield server


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=OPENAI_KEY) as server:
        yield server


def run_batch(
    tmp_path: Path, providers: dict[str, Any], cli: FakeCli, batch: dict[str, Any] = SPEC
) -> tuple[subprocess.CompletedProcess[str], Path]:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(batch))
    providers_file = tmp_path / "providers.json"
    doc = {"version": 1, "strategy": "priority_based", "circuit": {"failure_threshold": 50}, "providers": providers}
    providers_file.write_text(json.dumps(doc))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ANTHROPIC_", "CLAUDE_"))}
    env = {
        **base,
        **cli.env(),
        "SWITCHBOARD_HOME": str(tmp_path / "home"),
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "E2E_ANTHROPIC_KEY": ANTHROPIC_KEY,
        "E2E_OPENAI_KEY": OPENAI_KEY,
        "E2E_TEAM_B_KEY": TEAM_B_KEY,
    }
    result = subprocess.run(
        [sys.executable, "-m", "cli", "run", str(spec), "--providers", str(providers_file), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )
    return result, tmp_path / "ledger.db"


def claude_usage(raw: dict[str, int]) -> TokenUsage:
    return TokenUsage(
        input=raw["input_tokens"],
        output=raw["output_tokens"],
        cache_read=raw["cache_read_input_tokens"],
        cache_write=raw["cache_creation_input_tokens"],
    )


def test_each_task_lands_on_its_provider_with_exact_tokens_and_cost(
    tmp_path: Path, anthropic: FakeAnthropic, anthropic_down: FakeAnthropic, openai: FakeOpenAI
) -> None:
    cli = FakeCli(tmp_path / "fake-claude")
    team_a = tmp_path / "sub-team-a"
    team_a.mkdir()
    cli.scenario(
        {
            # Rotation: review -> team-a; fix -> team-b (an API error after 3 turns), its retry -> team-a.
            "by_config_dir": {
                "sub-team-a": [
                    {"result": "LGTM with nits", "usage": REVIEW_USAGE, "cost": REVIEW_COST},
                    {"result": "Fixed the off-by-one", "usage": FIX_USAGE, "cost": FIX_COST},
                ]
            },
            "api_key": {
                "kind": "api_error", "status": 529, "num_turns": 3, "usage": FIX_FAILED_USAGE, "cost": FIX_FAILED_COST
            },
        }
    )  # fmt: skip
    anthropic.script(Scripted(200, anthropic_message("A summary.", usage=SUMMARY_USAGE), anthropic_ratelimit_headers()))
    openai.script(Scripted(200, chat_completion("PR 7 looks good.", usage=PR_USAGE)))
    providers = {
        "claude": {
            "type": "claude_cli",
            "priority": 1,
            "capabilities": ["code_review", "bug_fix"],
            "subscriptions": [
                {"name": "team-a", "config_dir": str(team_a)},
                {"name": "team-b", "api_key_env": "E2E_TEAM_B_KEY"},
            ],
        },
        "anthropic_down": {
            "type": "anthropic",
            "priority": 1,
            "capabilities": ["pr_review"],
            "base_url": anthropic_down.url,
            "api_key_env": "E2E_ANTHROPIC_KEY",
        },
        "anthropic": {
            "type": "anthropic",
            "priority": 1,
            "capabilities": ["summarization"],
            "base_url": anthropic.url,
            "api_key_env": "E2E_ANTHROPIC_KEY",
        },
        "openai": {
            "type": "openai_compatible",
            "priority": 2,
            "capabilities": ["pr_review"],
            "base_url": openai.url + "/v1",
            "model": "gpt-4o",
            "api_key_env": "E2E_OPENAI_KEY",
        },
    }
    result, db_path = run_batch(tmp_path, providers, cli)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = json.loads(result.stdout)

    summary_cost = SONNET_45.cost(claude_usage(SUMMARY_USAGE))
    pr_usage = TokenUsage(input=200, output=80, cache_read=1000, reasoning=30)
    pr_cost = GPT_4O.cost(pr_usage)
    # (provider, subscription, outcome, usage, cost, model) per attempt, in order. Calls on team-a's login are
    # charged nothing (its subscription pays for them; the CLI's figure is kept as the list price, checked below);
    # team-b's key is billed.
    expected: dict[str, list[tuple[str, str | None, str, TokenUsage, float, str | None]]] = {
        "review": [("claude", "team-a", "success", claude_usage(REVIEW_USAGE), 0.0, SONNET_ID)],
        "fix": [
            ("claude", "team-b", "overloaded", claude_usage(FIX_FAILED_USAGE), FIX_FAILED_COST, SONNET_ID),
            ("claude", "team-a", "success", claude_usage(FIX_USAGE), 0.0, SONNET_ID),
        ],
        "summary": [("anthropic", None, "success", claude_usage(SUMMARY_USAGE), summary_cost, SONNET_ID)],
        "pr": [
            ("anthropic_down", None, "overloaded", TokenUsage(), 0.0, None),
            ("anthropic_down", None, "overloaded", TokenUsage(), 0.0, None),
            ("openai", None, "success", pr_usage, pr_cost, "gpt-4o-2024-08-06"),
        ],
    }  # fmt: skip
    served_by = {"review": "claude", "fix": "claude", "summary": "anthropic", "pr": "openai"}

    tasks = {t["id"]: t for t in out["tasks"]}
    for task_id, attempts in expected.items():
        task = tasks[task_id]
        assert (task["status"], task["provider"]) == ("completed", served_by[task_id])
        got = [
            (a["provider"], a["subscription"], a["outcome"], TokenUsage(**a["tokens"]), a["cost_usd"], a["model"])
            for a in task["attempts"]
        ]
        assert [g[:4] for g in got] == [e[:4] for e in attempts], task_id
        assert [g[4] for g in got] == pytest.approx([e[4] for e in attempts], rel=1e-9, abs=1e-12), task_id
        assert [g[5] for g in got] == [e[5] for e in attempts], task_id
        assert task["cost_usd"] == pytest.approx(sum(e[4] for e in attempts), rel=1e-9)
    # The JSON shows a list price only where it differs from the charge: on team-a's login.
    assert [a.get("list_price_usd") for a in tasks["review"]["attempts"]] == [pytest.approx(REVIEW_COST)]
    assert [a.get("list_price_usd") for a in tasks["fix"]["attempts"]] == [None, pytest.approx(FIX_COST)]
    assert all("list_price_usd" not in a for a in tasks["pr"]["attempts"] + tasks["fix"]["attempts"][:1])
    assert out["totals"]["completed"] == 4 and out["totals"]["failovers"] == 1
    total = sum(e[4] for attempts in expected.values() for e in attempts)
    assert out["totals"]["cost_usd"] == pytest.approx(total, rel=1e-9)

    # The ledger holds the same numbers, one row per attempt with attempt numbers across providers.
    db = sqlite3.connect(db_path)
    rows = db.execute(
        "select task_id, attempt, provider_id, subscription, outcome, model, tokens_input, tokens_output,"
        " tokens_cache_read, tokens_cache_write, tokens_reasoning, cost_usd, team from provider_usage"
        " where run_id = ? order by task_id, attempt",
        (out["run"]["id"],),
    ).fetchall()
    by_task: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_task.setdefault(row[0], []).append(row)
    for task_id, attempts in expected.items():
        stored = by_task[task_id]
        assert [r[1] for r in stored] == list(range(1, len(attempts) + 1))
        for row, (provider, sub, outcome, usage, cost, model) in zip(stored, attempts, strict=True):
            assert row[2:6] == (provider, sub, outcome, model), (task_id, row)
            assert row[6:11] == (usage.input, usage.output, usage.cache_read, usage.cache_write, usage.reasoning)
            assert row[11] == pytest.approx(cost, rel=1e-9, abs=1e-12)
            assert row[12] == "platform"
    list_prices = db.execute(
        "select task_id, subscription, list_price_usd from provider_usage where run_id = ? order by task_id, attempt",
        (out["run"]["id"],),
    ).fetchall()
    assert [(t, s, p) for t, s, p in list_prices if t in ("review", "fix")] == [
        ("fix", "team-b", None),
        ("fix", "team-a", pytest.approx(FIX_COST)),
        ("review", "team-a", pytest.approx(REVIEW_COST)),
    ]
    statuses = dict(db.execute("select task_id, provider_id from tasks where run_id = ?", (out["run"]["id"],)))
    assert statuses == served_by

    # What the services saw: the right keys, and the downstream prompt carrying upstream output.
    assert [c["key"] for c in cli.calls()] == ["config_dir:sub-team-a", "api_key", "config_dir:sub-team-a"]
    messages = [r for r in anthropic.requests if r.path == "/v1/messages"]
    assert len(messages) == 1 and messages[0].headers["x-api-key"] == ANTHROPIC_KEY
    assert "Fixed the off-by-one" in messages[0].body["messages"][0]["content"]
    assert len([r for r in anthropic_down.requests if r.path == "/v1/messages"]) == 2
    chat = [r for r in openai.requests if r.path == "/v1/chat/completions"]
    assert len(chat) == 1 and chat[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    for text in (result.stdout, result.stderr):
        assert all(key not in text for key in (ANTHROPIC_KEY, OPENAI_KEY, TEAM_B_KEY))


def test_when_every_subscription_is_out_routing_skips_the_provider_instead_of_spending_attempts(
    tmp_path: Path,
) -> None:
    # Both logins answer with the usage-limit message, resetting in two hours. Once the second is out, the
    # provider as a whole is out: later tasks must go straight to the mock, without a claude attempt each.
    cli = FakeCli(tmp_path / "fake-claude")
    resets = int(time.time()) + 7200
    cli.scenario({"default": {"kind": "usage_limit", "message": f"Claude AI usage limit reached|{resets}"}})
    subs = []
    for name in ("a", "b"):
        (tmp_path / f"sub-{name}").mkdir()
        subs.append({"name": name, "config_dir": str(tmp_path / f"sub-{name}")})
    providers = {
        "claude": {"type": "claude_cli", "priority": 1, "subscriptions": subs},
        "mock": {"type": "local_mock", "priority": 2, "failure_rate": 0},
    }
    chain = [{"id": f"t{i}", "type": "code_review", "prompt": f"p{i}"} for i in range(5)]
    for before, task in itertools.pairwise(chain):
        task["depends_on"] = [before["id"]]  # one at a time, so the order of events is fixed
    result, _ = run_batch(tmp_path, providers, cli, {"name": "all-out", "tasks": chain})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = json.loads(result.stdout)
    tasks = {t["id"]: t for t in out["tasks"]}
    # A move between one provider's subscriptions is a rotation, not a failover.
    assert (out["totals"]["rotations"], out["totals"]["failovers"]) == (1, 1)
    attempts = {
        tid: [(a["provider"], a["subscription"], a["outcome"]) for a in t["attempts"]] for tid, t in tasks.items()
    }
    # The first task meets "a"'s limit, moves to "b" (a rotation), meets its limit too, and only then fails over.
    assert attempts == {
        "t0": [("claude", "a", "quota_exhausted"), ("claude", "b", "quota_exhausted"), ("mock", None, "success")],
        "t1": [("mock", None, "success")],
        "t2": [("mock", None, "success")],
        "t3": [("mock", None, "success")],
        "t4": [("mock", None, "success")],
    }
    assert len(cli.calls()) == 2  # every claude attempt in the ledger is a CLI run that really happened
