"""Batch spec validation: every bad input is rejected before anything runs, naming the file and field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from batches import SpecError, check_same_spec, load_spec, parse_spec, start_run
from batches.spec import find_cycle
from providers import Priority


def _spec(*tasks: dict, **extra: object) -> dict:
    return {"name": "demo", "tasks": list(tasks), **extra}


def test_valid_spec_applies_defaults_and_orders_layers() -> None:
    spec = parse_spec(
        _spec(
            {"id": "a", "type": "code_analysis", "prompt": "map"},
            {"id": "b", "type": "pr_review", "prompt": "review", "depends_on": ["a"], "priority": "high"},
            {"id": "c", "type": "summarization", "prompt": "sum", "depends_on": ["a", "b"]},
            defaults={"priority": "low", "max_attempts": 5},
            team="platform",
        ),
        "spec.yaml",
    )
    assert [[t.id for t in layer] for layer in spec.layers()] == [["a"], ["b"], ["c"]]
    task = spec.to_ai_task(spec.task("a"), {})
    assert task.priority is Priority.LOW and task.max_attempts == 5 and task.team == "platform"
    assert spec.to_ai_task(spec.task("b")).priority is Priority.HIGH


def test_a_task_may_prefer_a_provider_and_a_model() -> None:
    spec = parse_spec(_spec({"id": "a", "type": "t", "prompt": "p", "provider": "claude", "model": "opus"}), "s")
    task = spec.to_ai_task(spec.tasks[0])
    assert task.metadata == {"provider": "claude", "model": "opus"}
    plain = parse_spec(_spec({"id": "a", "type": "t", "prompt": "p"}), "s")
    assert plain.to_ai_task(plain.tasks[0]).metadata == {}
    with pytest.raises(SpecError, match=r"tasks\[0\] \(id 'a'\)\.provider"):
        parse_spec(_spec({"id": "a", "type": "t", "prompt": "p", "provider": ""}), "s")


def test_a_task_or_the_batch_may_opt_out_of_the_response_cache() -> None:
    tasks = [{"id": "a", "type": "t", "prompt": "p"}, {"id": "b", "type": "t", "prompt": "p", "cache": False}]
    spec = parse_spec(_spec(*tasks), "s")
    assert [spec.to_ai_task(t).cache for t in spec.tasks] == [True, False]
    tasks[1]["cache"] = True
    batch = parse_spec({**_spec(*tasks), "defaults": {"cache": False}}, "s")
    assert [batch.to_ai_task(t).cache for t in batch.tasks] == [False, True]


def test_cycle_is_named_as_a_path() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(
            _spec(
                {"id": "a", "type": "t", "prompt": "p", "depends_on": ["c"]},
                {"id": "b", "type": "t", "prompt": "p", "depends_on": ["a"]},
                {"id": "c", "type": "t", "prompt": "p", "depends_on": ["b"]},
            ),
            "cyc.yaml",
        )
    message = str(info.value)
    assert message.startswith("cyc.yaml:")
    assert "cycle" in message and "a -> c -> b -> a" in message


def test_unknown_dependency_and_duplicate_id_are_reported() -> None:
    with pytest.raises(SpecError, match=r"tasks\[1\] \(id 'b'\)\.depends_on: unknown task 'nope'"):
        parse_spec(
            _spec(
                {"id": "a", "type": "t", "prompt": "p"}, {"id": "b", "type": "t", "prompt": "p", "depends_on": ["nope"]}
            ),
            "s",
        )
    with pytest.raises(SpecError, match=r"tasks\[1\] \(id 'a'\)\.id: duplicate id 'a' \(also tasks\[0\] \(id 'a'\)\)"):
        parse_spec(_spec({"id": "a", "type": "t", "prompt": "p"}, {"id": "a", "type": "t", "prompt": "q"}), "s")


@pytest.mark.parametrize(
    ("task", "field"),
    [
        ({"id": "x", "type": "t", "prompt": "p", "priority": "urgent"}, "priority"),
        ({"id": "x", "type": "t", "prompt": "   "}, "prompt"),
        ({"id": "x", "type": "t", "prompt": "p", "colour": "red"}, "colour"),
        ({"id": "x", "type": "t", "prompt": "p", "max_attempts": 0}, "max_attempts"),
        ({"id": "x", "type": "t", "prompt": "p", "strategy": "fastest"}, "strategy"),
        ({"id": "x", "type": "t", "prompt": "p", "cache": "sometimes"}, "cache"),
    ],
)
def test_bad_field_names_the_task_and_field(task: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_spec({"id": "ok", "type": "t", "prompt": "p"}, task), "batch.yaml")
    assert f"tasks[1] (id 'x').{field}" in str(info.value)


@pytest.mark.parametrize(
    "tasks",
    [
        [{"id": "a", "type": "t", "prompt": "p", "priority": "urgent"}],  # a bad field (pydantic)
        [{"id": "a", "type": "t", "prompt": "p", "depends_on": ["nope"]}],  # an unknown dependency
        [{"id": "a", "type": "t", "prompt": "p", "depends_on": ["a"]}],  # itself
        [{"id": "a", "type": "t", "prompt": "p"}, {"id": "a", "type": "t", "prompt": "q"}],  # a duplicate id
    ],
)
def test_every_task_level_error_names_the_task_one_way(tasks: list[dict]) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_spec(*tasks), "s.yaml")
    for problem in info.value.problems:
        assert re.match(r"tasks\[\d+\] \(id '[^']+'\)\.\w+: ", problem), problem


def test_find_cycle_returns_none_for_a_dag() -> None:
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) is None
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


def test_load_yaml_and_json_files(tmp_path: Path) -> None:
    doc = _spec({"id": "a", "type": "t", "prompt": "p"})
    (tmp_path / "s.json").write_text(json.dumps(doc))
    (tmp_path / "s.yaml").write_text("name: demo\ntasks:\n  - {id: a, type: t, prompt: p}\n")
    assert load_spec(tmp_path / "s.json").content_hash() == load_spec(tmp_path / "s.yaml").content_hash()


def test_unreadable_or_malformed_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: demo\ntasks: [\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: invalid YAML at line"):
        load_spec(bad)


def test_content_hash_changes_with_content() -> None:
    one = parse_spec(_spec({"id": "a", "type": "t", "prompt": "p"}), "s")
    two = parse_spec(_spec({"id": "a", "type": "t", "prompt": "q"}), "s")
    assert one.content_hash() != two.content_hash()


def test_a_file_is_parsed_once_per_version(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ntasks:\n  - {id: a, type: code_review, prompt: one}\n")
    first = load_spec(path)
    assert load_spec(str(path)) is first  # the flow reads back what the CLI checked, not the file again
    path.write_text("name: s\ntasks:\n  - {id: a, type: code_review, prompt: two, priority: high}\n")
    changed = load_spec(path)
    assert changed.task("a").prompt == "two" and changed.content_hash() != first.content_hash()
    path.write_text("name: s\ntasks:\n  - {id: a, type: code_review, prompt: ''}\n")
    with pytest.raises(SpecError, match="prompt"):
        load_spec(path)


def test_a_run_handed_to_the_flow_must_be_of_the_same_spec(tmp_path: Path) -> None:
    from ledger import Ledger

    ledger = Ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    one = parse_spec({"name": "s", "tasks": [{"id": "a", "type": "t", "prompt": "one"}]}, "s")
    two = parse_spec({"name": "s", "tasks": [{"id": "a", "type": "t", "prompt": "two"}]}, "s")
    run_id, _ = start_run(ledger, one, "priority_based")
    check_same_spec(ledger, run_id, one)
    with pytest.raises(SpecError, match="the spec changed after run"):
        check_same_spec(ledger, run_id, two)
    with pytest.raises(SpecError, match="not in the ledger"):
        check_same_spec(ledger, "r-missing", one)


@pytest.mark.parametrize(
    ("where", "spec", "named"),
    [
        ("name", _spec({"id": "a", "type": "t", "prompt": "p"}, name="bad\x00name"), "name: "),
        ("team", _spec({"id": "a", "type": "t", "prompt": "p"}, team="\x1b]0;x\x07"), "team: "),
        ("type", _spec({"id": "a", "type": "code\x00review", "prompt": "p"}), "tasks[0] (id 'a').type: "),
        ("task team", _spec({"id": "a", "type": "t", "prompt": "p", "team": "a\u202eb"}), "tasks[0] (id 'a').team: "),
        ("id", _spec({"id": "a\x00", "type": "t", "prompt": "p"}), "tasks[0] (id 'a\\x00').id: "),
        ("depends_on", _spec({"id": "a", "type": "t", "prompt": "p", "depends_on": ["\x1b"]}), ".depends_on"),
        (
            "prompt",
            _spec({"id": "a", "type": "t", "prompt": "p\x00"}),
            "tasks[0] (id 'a').prompt: Value error, must not contain NUL",
        ),
    ],
)
def test_nul_and_control_characters_in_names_are_refused_naming_the_field(where: str, spec: dict, named: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(spec, "spec.json")
    message = str(info.value)
    assert message.startswith("spec.json: ") and named in message, message
    assert "\x00" not in message and "\x1b" not in message  # the value is quoted escaped


def test_prompts_keep_newlines_tabs_and_escapes() -> None:
    spec = parse_spec(_spec({"id": "a", "type": "t", "prompt": "line\n\tcolour \x1b[31m"}), "spec.json")
    assert spec.task("a").prompt == "line\n\tcolour \x1b[31m"


@pytest.mark.parametrize(
    ("deadline", "seconds"), [("12h", 43200), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("1d", 86400), ("2.5s", 2.5)]
)
def test_a_deadline_is_a_duration_and_makes_the_task_deferrable(deadline: str, seconds: float) -> None:
    spec = parse_spec({"name": "n", "tasks": [{"id": "a", "type": "t", "prompt": "p", "deadline": deadline}]}, "s")
    assert spec.tasks[0].deadline_s == seconds
    assert spec.to_ai_task(spec.tasks[0]).metadata == {"deferrable": "true", "deadline_s": f"{seconds:g}"}


@pytest.mark.parametrize("deadline", ["soon", "12", "h", "-1h", "0s", "12h tomorrow", "", "367d"])
def test_a_deadline_that_is_not_a_duration_is_refused_naming_the_task(deadline: str) -> None:
    doc = {"name": "n", "tasks": [{"id": "a", "type": "t", "prompt": "p", "deadline": deadline}]}
    with pytest.raises(
        SpecError, match=r"s: tasks\[0\] \(id 'a'\)\.deadline: .*(not a duration|longer than 0|at most 366d)"
    ):
        parse_spec(doc, "s")


def test_a_deferrable_batch_lets_every_task_wait_and_only_a_true_or_false_is_taken() -> None:
    tasks = [{"id": "a", "type": "t", "prompt": "p"}, {"id": "b", "type": "t", "prompt": "p", "provider": "x"}]
    spec = parse_spec({"name": "n", "deferrable": True, "tasks": tasks}, "s")
    assert [spec.to_ai_task(t).metadata for t in spec.tasks] == [
        {"deferrable": "true"},
        {"provider": "x", "deferrable": "true"},
    ]
    plain = parse_spec({"name": "n", "tasks": tasks}, "s")
    assert [plain.to_ai_task(t).metadata for t in plain.tasks] == [{}, {"provider": "x"}]
    with pytest.raises(SpecError, match=r"s: deferrable: Input should be a valid boolean"):
        parse_spec({"name": "n", "deferrable": "sometimes", "tasks": tasks}, "s")
