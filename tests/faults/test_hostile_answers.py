"""A provider answering half an emoji, a NUL and terminal escapes: on SQLite and on PostgreSQL every task
completes, provider calls equal ledger rows, a re-run calls none of them again, `show` prints no raw escape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger import Ledger, create_ledger_engine
from tests.cli.cli_kit import cli_env, switchboard
from tests.fakes.fake_llm_servers import FakeOpenAI, Received, Scripted, chat_completion, openai_error
from tests.faults.invariants import check_invariants

pytestmark = pytest.mark.slow

ANSWERS = {
    "half-emoji": "smile \ud83d then more",  # legal JSON: "\ud83d"
    "nul": "before\x00after",
    "escapes": "\x1b]0;pwned\x07\x1b[2J\x1b[H\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\",
}
SPEC = {
    "name": "hostile",
    "tasks": [
        *({"id": key, "type": "code_review", "prompt": f"answer:{key}"} for key in ANSWERS),
        {"id": "uses-them", "type": "summarization", "prompt": "answer:summary", "depends_on": list(ANSWERS)},
        {"id": "refused", "type": "code_review", "prompt": "answer:refused"},
    ],
}


class HostileOpenAI(FakeOpenAI):
    """Answers each task with the text its prompt names; `refused` gets a 400 until `accept_all`."""

    accept_all = False

    def default(self, request: Received) -> Scripted:
        if request.method != "POST" or not isinstance(request.body, dict):
            return super().default(request)
        prompt = request.body["messages"][-1]["content"]
        key = prompt.rsplit("answer:", 1)[-1]
        if key == "refused" and not self.accept_all:
            return openai_error(400, "refused for the test", "invalid_request_error")
        return Scripted(200, chat_completion(ANSWERS.get(key, f"ok {key}"), model="hostile-1"))

    def completions(self) -> list[Received]:
        return [r for r in self.requests if r.method == "POST"]


def test_hostile_answers_are_stored_exactly_and_never_paid_twice(tmp_path: Path, database_url: str) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    with HostileOpenAI(auth=None) as server:
        providers = tmp_path / "providers.yaml"
        providers.write_text(
            "providers:\n"
            f"  hostile: {{type: openai_compatible, base_url: '{server.url}/v1', model: hostile-1,"
            " prices: {'*': {input: 1.0, output: 2.0}}}\n"
        )
        env = cli_env(tmp_path, SWITCHBOARD_DATABASE_URL=database_url)
        first = switchboard("run", str(spec), "--providers", str(providers), "--json", env=env)
        assert first.returncode == 1, first.stderr[-3000:]  # `refused` failed; everything else completed
        summary = json.loads(first.stdout)
        statuses = {t["id"]: t["status"] for t in summary["tasks"]}
        assert statuses == {**dict.fromkeys([*ANSWERS, "uses-them"], "completed"), "refused": "failed"}
        outputs = {t["id"]: t["output"] for t in summary["tasks"]}
        assert {k: outputs[k] for k in ANSWERS} == ANSWERS  # exactly, half emoji and NUL included

        # The dependent was sent valid text: the half emoji as U+FFFD, the NUL and the escapes as they are.
        sent = next(r for r in server.completions() if "answer:summary" in r.body["messages"][-1]["content"])
        prompt = sent.body["messages"][-1]["content"]
        assert "smile \ufffd then more" in prompt and "before\x00after" in prompt
        calls_first = len(server.completions())

        engine = create_ledger_engine(database_url)
        ledger = Ledger(engine)
        run_id = summary["run"]["id"]
        check_invariants(ledger, run_id, provider_calls=calls_first)
        assert {t: ledger.task_state(run_id, t).output for t in ANSWERS} == ANSWERS

        server.accept_all = True
        second = switchboard("run", str(spec), "--providers", str(providers), "--json", env=env)
        assert second.returncode == 0, second.stderr[-3000:]
        new_calls = [r.body["messages"][-1]["content"] for r in server.completions()[calls_first:]]
        assert new_calls == ["answer:refused"]  # the paid answers were not asked for again
        check_invariants(ledger, run_id, provider_calls=len(server.completions()))
        engine.dispose()

    shown = switchboard("show", run_id, env=env)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout and "\x00" not in shown.stdout
    assert "\\x1b]0;pwned\\a" in shown.stdout and "smile \\ud83d then more" in shown.stdout
