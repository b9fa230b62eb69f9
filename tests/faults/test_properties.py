"""Property-based tests (hypothesis) over what users and providers hand us: specs, providers files and answers of
any Unicode are either accepted and kept exactly (modulo the documented storage escape, providers/text.py) or
refused with a validation error naming the place; never an unexpected exception."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batches import SpecError, parse_spec
from ledger import AttemptRecord, Ledger, NewTask, TaskOutcome, TaskStatus
from routing import ConfigError, parse_config

AWKWARD = ["\ud83d", "\udc00", "\x00", "\x1b", "\ufdd0", "\ufdd1", "\u202e", "\r", "\n", "é", "😀", "[/]"]
ANY_TEXT = st.lists(
    st.one_of(st.characters(codec=None, categories=["L", "M", "N", "P", "S", "Z", "C"]), st.sampled_from(AWKWARD)),
    max_size=40,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(name=ANY_TEXT, task_id=ANY_TEXT, task_type=ANY_TEXT, team=ANY_TEXT, prompt=ANY_TEXT)
def test_any_spec_is_accepted_as_written_or_refused_naming_the_field(
    name: str, task_id: str, task_type: str, team: str, prompt: str
) -> None:
    doc = {"name": name, "team": team, "tasks": [{"id": task_id, "type": task_type, "prompt": prompt}]}
    try:
        spec = parse_spec(doc, "spec.yaml")
    except SpecError as exc:
        assert str(exc).startswith("spec.yaml: ")
        return
    task = spec.tasks[0]
    assert (spec.name, spec.team, task.id, task.type, task.prompt) == (name, team, task_id, task_type, prompt)
    for text in (name, team, task_id, task_type):  # names that passed hold no control character
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in text)
    assert "\x00" not in prompt


@settings(max_examples=200, deadline=None)
@given(provider=ANY_TEXT, base_url=ANY_TEXT, enabled=st.booleans())
def test_any_providers_file_is_accepted_or_refused_naming_the_field(
    provider: str, base_url: str, enabled: bool
) -> None:
    doc = {
        "providers": {provider: {"type": "openai_compatible", "model": "m", "base_url": base_url, "enabled": enabled}}
    }
    try:
        config = parse_config(doc, "providers.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("providers.yaml: ")
        return
    assert enabled and config.providers[provider].base_url == base_url
    assert base_url.startswith(("http://", "https://"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=ANY_TEXT, error=ANY_TEXT, model=ANY_TEXT)
def test_any_answer_is_stored_and_read_back_exactly(tmp_path: Path, answer: str, error: str, model: str) -> None:
    ledger = _ledger(tmp_path)
    run_id, _ = ledger.start_or_resume_run(
        batch_name="p", batch_hash="h", team=None, strategy=None,
        tasks=[NewTask(task_id="t", task_type="x", priority="normal")], fresh=True,
    )  # fmt: skip
    now = datetime.now(UTC)
    attempt = AttemptRecord(
        run_id=run_id, task_id="t", provider_id="p", task_type="x", attempt=1, outcome="success",
        started_at=now, finished_at=now, output=answer, error_message=error, model=model,
    )  # fmt: skip
    ledger.finish_task(run_id, "t", status=TaskStatus.COMPLETED, output=answer, error=error, attempts=[attempt])
    ledger.finish_tasks(run_id, [TaskOutcome(task_id="t", status=TaskStatus.COMPLETED, output=answer, error=error)])
    stored = ledger.attempts(run_id)[0]
    assert (stored.output, stored.error_message, stored.model) == (answer, error, model)
    state = ledger.task_state(run_id, "t")
    assert state is not None and (state.output, state.error) == (answer, error)


_ledgers: dict[Path, Ledger] = {}


def _ledger(tmp_path: Path) -> Ledger:
    # One ledger per test (hypothesis runs the body many times with the same tmp_path).
    if tmp_path not in _ledgers:
        _ledgers[tmp_path] = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    return _ledgers[tmp_path]
