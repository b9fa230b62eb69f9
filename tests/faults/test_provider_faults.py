"""Provider faults through a whole run: a provider that hangs, answers a 429 storm (rate limited with a long
retry-after, or out of quota), 5xx, drops the connection, sends truncated JSON, or (the Claude CLI) reports its
usage limit. Each runs the batch core in this process (providers, router, group-committing ledger writer; the
path a chunk of `switchboard run` takes) against the local stand-ins, once with a healthy provider behind the
faulty one (every task completes there) and once alone (every task fails with its reason, the dependent is
skipped), and the fault suite's invariants are checked after each: provider calls equal attempt rows, no call
while the circuit was open or the quota exhausted, exact costs, nothing pending.

The provider-level classification of each fault (which error, retry-after, reset time) is tested in
tests/providers; this file owns what a run makes of it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from batches import end_run, open_runtime, parse_spec, run_nodes, start_run
from ledger import Ledger, TaskStatus
from routing import CIRCUIT_OPENED, QUOTA_BLOCKED, parse_config
from tests.fakes.claude_harness import FakeCli, install_fake
from tests.fakes.fake_llm_servers import FakeOpenAI, Received, Scripted, chat_completion, openai_error
from tests.faults.invariants import check_invariants

TASKS = 6
SPEC = {
    "name": "provider-faults",
    "tasks": [
        *({"id": f"t{n}", "type": "code_review", "prompt": f"p{n}"} for n in range(TASKS)),
        {"id": "after", "type": "summarization", "prompt": "sum", "depends_on": ["t0", "t1"]},
    ],
}
# Retries stay short (a retry-after over `retry_max_s` moves on); the circuit opens after two failures.
ROUTING = {
    "strategy": "priority_based",
    "circuit": {"failure_threshold": 2, "cooldown_s": 60},
    "failover": {"retry_base_s": 0.01, "retry_max_s": 0.2, "jitter": 0.0},
}
PRICES = {"*": {"input": 1.0, "output": 2.0}}


def _truncated() -> Scripted:
    whole = json.dumps(chat_completion("an answer cut short", model="m-1"))
    return Scripted(200, whole[: len(whole) // 2])


# What the faulty provider answers every completion request with.
@dataclass(frozen=True)
class Fault:
    answer: Callable[[], Scripted]
    blocks_quota: bool = False  # the fault must leave a `quota.blocked` event (the quota invariant applies)


HTTP_FAULTS: dict[str, Fault] = {
    "hang": Fault(lambda: Scripted(200, chat_completion("too late", model="m-1"), delay_s=30)),
    "429-storm": Fault(
        lambda: Scripted(
            429,
            openai_error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded").body,
            {"retry-after": "60"},
        ),
        blocks_quota=True,
    ),
    "429-insufficient-quota": Fault(
        lambda: openai_error(429, "You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
        blocks_quota=True,
    ),
    "500": Fault(lambda: openai_error(500, "The server had an error while processing your request", "server_error")),
    "503": Fault(lambda: openai_error(503, "The engine is currently overloaded", "server_error")),
    "dropped-connection": Fault(lambda: Scripted(drop=True)),
    "truncated-json": Fault(_truncated),
}


class Faulty(FakeOpenAI):
    def __init__(self, fault: Fault) -> None:
        super().__init__(auth=None)
        self.fault = fault

    def default(self, request: Received) -> Scripted:
        if request.method == "POST" and request.path == self.main_path:
            return self.fault.answer()
        return super().default(request)


class Healthy(FakeOpenAI):
    def default(self, request: Received) -> Scripted:
        if request.method == "POST" and request.path == self.main_path:
            return Scripted(200, chat_completion(f"ok: {request.body['messages'][-1]['content'][:20]}", model="m-1"))
        return super().default(request)


def _completions(server: FakeOpenAI) -> int:
    return sum(1 for r in server.requests if r.method == "POST" and r.path == server.main_path)


@dataclass(frozen=True)
class Outcome:
    ledger: Ledger
    run_id: str
    statuses: dict[str, TaskStatus]
    errors: dict[str, str | None]


def _run(tmp_path: Path, providers: dict[str, Any]) -> Outcome:
    """Run SPEC to its end through the batch core, as one chunk of `switchboard run` does."""
    spec = parse_spec(SPEC, "spec.yaml")
    config = parse_config({**ROUTING, "providers": providers}, "providers.yaml")
    ledger = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    run_id, _ = start_run(ledger, spec, config.strategy, fresh=True)
    runtime = open_runtime(spec, config, config.strategy, run_id=run_id, ledger=ledger)
    try:
        results = run_nodes(runtime, [t.id for t in spec.tasks])
    finally:
        runtime.close()
    end_run(ledger, run_id)
    return Outcome(ledger, run_id, {r.task_id: r.status for r in results}, {r.task_id: r.error for r in results})


def _events(outcome: Outcome, kind: str, provider_id: str) -> int:
    since = datetime.now(UTC) - timedelta(hours=1)
    return sum(1 for e in outcome.ledger.events_since(since, [kind]) if e.provider_id == provider_id)


def _expect(outcome: Outcome, *, backed_up: bool) -> None:
    if backed_up:
        assert set(outcome.statuses.values()) == {TaskStatus.COMPLETED}, outcome.errors
        return
    for task_id, status in outcome.statuses.items():
        wanted = TaskStatus.SKIPPED if task_id == "after" else TaskStatus.FAILED
        assert status == wanted and outcome.errors[task_id], (task_id, status, outcome.errors[task_id])


@pytest.fixture
def healthy() -> Iterator[Healthy]:
    with Healthy(auth=None) as server:
        yield server


@pytest.mark.parametrize("backed_up", [True, False], ids=["with-backup", "alone"])
@pytest.mark.parametrize("name", list(HTTP_FAULTS))
def test_an_http_provider_fault_loses_nothing_and_breaks_no_invariant(
    tmp_path: Path, healthy: Healthy, name: str, backed_up: bool
) -> None:
    fault = HTTP_FAULTS[name]
    with Faulty(fault) as faulty:
        providers: dict[str, Any] = {
            "faulty": {
                "type": "openai_compatible", "base_url": f"{faulty.url}/v1", "model": "m-1", "priority": 1,
                "timeout_s": 0.5, "prices": PRICES,
            },
        }  # fmt: skip
        if backed_up:
            providers["backup"] = {
                "type": "openai_compatible", "base_url": f"{healthy.url}/v1", "model": "m-1", "priority": 2,
                "prices": PRICES,
            }  # fmt: skip
        outcome = _run(tmp_path, providers)
        calls = _completions(faulty) + _completions(healthy)
    _expect(outcome, backed_up=backed_up)
    assert _completions(faulty) > 0
    check_invariants(outcome.ledger, outcome.run_id, provider_calls=calls)
    if fault.blocks_quota:  # so the quota invariant had a block to judge
        assert _events(outcome, QUOTA_BLOCKED, "faulty") >= 1
    else:
        assert _events(outcome, CIRCUIT_OPENED, "faulty") >= 1
    outcome.ledger.close()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCli:
    return install_fake(tmp_path / "fake", monkeypatch)


@pytest.mark.parametrize("backed_up", [True, False], ids=["with-backup", "alone"])
def test_the_claude_cli_usage_limit_blocks_it_until_its_reset_and_breaks_no_invariant(
    tmp_path: Path, healthy: Healthy, cli: FakeCli, backed_up: bool
) -> None:
    reset = int((datetime.now(UTC) + timedelta(hours=2)).timestamp())
    cli.scenario({"default": {"kind": "usage_limit", "message": f"Claude AI usage limit reached|{reset}"}})
    providers: dict[str, Any] = {"claude": {"type": "claude_cli", "executable": str(cli.executable), "priority": 1}}
    if backed_up:
        providers["backup"] = {
            "type": "openai_compatible", "base_url": f"{healthy.url}/v1", "model": "m-1", "priority": 2,
            "prices": PRICES,
        }  # fmt: skip
    outcome = _run(tmp_path, providers)
    _expect(outcome, backed_up=backed_up)
    calls = len(cli.calls())
    assert 1 <= calls < TASKS  # the block kept the other tasks from it
    check_invariants(outcome.ledger, outcome.run_id, provider_calls=calls + _completions(healthy))
    assert _events(outcome, QUOTA_BLOCKED, "claude") >= 1
    outcome.ledger.close()
