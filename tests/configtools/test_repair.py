"""`config repair` on a corpus of broken files: the exact text it writes (comments and layout kept), what it
leaves for a person, and the history `config rollback` restores from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from configtools import changes, plan_repair, rollback, write_repair

# (the file, the file after repair, the fields of the problems left for a person)
CORPUS: dict[str, tuple[str, str, list[str]]] = {
    "typos with one close match, comments kept": (
        "# team config\nversion: 1\nproviders:\n  c:\n    type: claude_clii   # the CLI\n"
        "    capabilities: [code_reveiw, bug_fix]\n  m:\n    type: local_mock\n    priorty: 2  # second\n",
        "# team config\nversion: 1\nproviders:\n  c:\n    type: claude_cli   # the CLI\n"
        "    capabilities: [code_review, bug_fix]\n  m:\n    type: local_mock\n    priority: 2  # second\n",
        [],
    ),
    "older keys and rates": (
        "version: 1\nproviders:\n  m:\n    type: local_mock\n    rate_limit: 1000/hour\n  n:\n    type: local_mock\n"
        "    limits:\n      requests_per_minute: '60/hour'\n      tokens_per_day: 5000 per day\n",
        "version: 1\nproviders:\n  m:\n    type: local_mock\n    limits: {requests_per_hour: 1000}\n  n:\n"
        "    type: local_mock\n    limits:\n      requests_per_hour: 60\n      tokens_per_day: 5000\n",
        [],
    ),
    "the missing version, after the leading comments": (
        "# providers for the team\n\nproviders:\n  m: {type: local_mock}\n",
        "# providers for the team\n\nversion: 1\nproviders:\n  m: {type: local_mock}\n",
        [],
    ),
    "a fixed type reveals its own keys' typos": (
        "version: 1\nproviders:\n  o:\n    type: openai_compatibel\n    model: m\n    base_url: http://127.0.0.1:9\n"
        "    extra_header: {}\n",
        "version: 1\nproviders:\n  o:\n    type: openai_compatible\n    model: m\n    base_url: http://127.0.0.1:9\n"
        "    extra_headers: {}\n",
        [],
    ),
    "what needs a person stays": (
        "version: 1\nproviders:\n  a:\n    type: anthropic\n    api_keys: [sk-1]\n    frobnicate: 1\n"
        "  m:\n    type: local_mock\n    failure_rate: 2\n    capabilities: [code_reveiw]\n",
        "version: 1\nproviders:\n  a:\n    type: anthropic\n    api_keys: [sk-1]\n    frobnicate: 1\n"
        "  m:\n    type: local_mock\n    failure_rate: 2\n    capabilities: [code_review]\n",
        ["providers.a.api_keys", "providers.a.frobnicate", "providers.m.failure_rate"],
    ),
    "two close matches: no guess": (
        "version: 1\nproviders:\n  m: {type: local_mock, capabilities: [lint_a_py, lint_b_py]}\n"
        "  n: {type: local_mock, capabilities: [lint_a_py, lint_b_py]}\n"
        "  o: {type: local_mock, capabilities: [lint_c_py]}\n",
        "version: 1\nproviders:\n  m: {type: local_mock, capabilities: [lint_a_py, lint_b_py]}\n"
        "  n: {type: local_mock, capabilities: [lint_a_py, lint_b_py]}\n"
        "  o: {type: local_mock, capabilities: [lint_c_py]}\n",
        ["providers.o.capabilities[0]"],
    ),
    "vendor batch: a bare true becomes its mapping, a misspelt setting its key": (
        "version: 1\nproviders:\n  o:\n    type: openai_compatible\n    base_url: http://127.0.0.1:9/v1\n"
        "    model: m\n    batch: true\n  a:\n    type: anthropic\n    batch: {discout: 0.5}\n",
        "version: 1\nproviders:\n  o:\n    type: openai_compatible\n    base_url: http://127.0.0.1:9/v1\n"
        "    model: m\n    batch: {enabled: true}\n  a:\n    type: anthropic\n    batch: {discount: 0.5}\n",
        [],
    ),
    "a JSON file stays JSON": (
        '{\n  "providers": {\n    "m": {"type": "local_mok", "priorty": 1}\n  }\n}\n',
        '{\n  "version": 1,\n  "providers": {\n    "m": {"type": "local_mock", "priority": 1}\n  }\n}\n',
        [],
    ),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_each_file_is_repaired_exactly(tmp_path: Path, case: str) -> None:
    text, expected, left = CORPUS[case]
    path = tmp_path / ("p.json" if "JSON" in case else "p.yaml")
    path.write_text(text, encoding="utf-8")
    repair = plan_repair(path)
    assert repair.after == expected
    assert [p.field for p in repair.remaining] == left
    assert path.read_text(encoding="utf-8") == text  # planning writes nothing


def test_the_diff_shows_each_change(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nproviders:\n  m:\n    type: local_mok\n")
    diff = plan_repair(path).diff()
    assert "-    type: local_mok\n+    type: local_mock\n" in diff and diff.startswith(f"--- {path} (before)")


def test_writing_keeps_the_old_file_and_rollback_restores_it_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    original = b"\xef\xbb\xbf# bom and CRLF\r\nproviders:\r\n  m: {type: local_mok}   # x\r\n"
    path.write_bytes(original)
    os.chmod(path, 0o640)
    repair = plan_repair(path)
    change = write_repair(repair)
    written = path.read_bytes()
    assert written.startswith(b"\xef\xbb\xbf") and b"type: local_mock}   # x\r\n" in written
    assert b"version: 1\n" in written and change.action == "repair"
    assert [c.number for c, rolled in changes()][-1] == change.number
    os.chmod(path, 0o600)
    assert rollback(path).number == change.number
    assert path.read_bytes() == original and (path.stat().st_mode & 0o777) == 0o640
    assert changes()[-1][1] is True  # marked rolled back: not undone twice


def test_a_file_that_does_not_parse_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("providers:\n  m: {type: local_mock\n")
    repair = plan_repair(path)
    assert not repair.changed and [p.kind for p in repair.remaining] == ["syntax"]
