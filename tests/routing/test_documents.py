"""Reading spec and providers documents: every unusable file is an InputError naming the file and the place."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing.documents import load_document
from routing.errors import ConfigError, InputError


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _problem(path: Path, error_cls: type[InputError] = InputError) -> str:
    with pytest.raises(error_cls) as info:
        load_document(path, error_cls)
    assert info.value.source == str(path)
    return str(info.value)


def test_text_that_is_not_utf8_is_located_by_line_column_and_byte_offset(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.yaml", b'name: c\ntasks:\n  - {id: a, type: t, prompt: "\xff"}\n')
    message = _problem(path)
    assert message == (
        f"{path}: not UTF-8 text: byte 0xff at line 3, column 31 (byte offset 45); save the file as UTF-8"
    )


def test_a_latin1_providers_file_raises_the_callers_error_class(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.json", '{"providers": {"m": {"model": "café"}}}'.encode("latin-1"))
    assert "byte 0xe9 at line 1, column 35 (byte offset 34)" in _problem(path, ConfigError)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    assert load_document(_write(tmp_path, "s.yaml", b"\xef\xbb\xbfname: x\n")) == {"name": "x"}
    assert load_document(_write(tmp_path, "s.json", b'\xef\xbb\xbf{"name": "x"}')) == {"name": "x"}


@pytest.mark.parametrize(("name", "content"), [("s.yaml", ""), ("s.yaml", "# only a comment\n\n"), ("s.json", "")])
def test_an_empty_file_says_it_is_empty(tmp_path: Path, name: str, content: str) -> None:
    message = _problem(_write(tmp_path, name, content))
    assert "NoneType" not in message
    assert "the file is empty" in message or "invalid JSON at line 1, column 1" in message  # JSON: not a document


@pytest.mark.parametrize(("content", "shown"), [("- a\n", "a list"), ("just text\n", "text"), ("42\n", "a number")])
def test_a_top_level_that_is_not_a_mapping_says_what_it_is(tmp_path: Path, content: str, shown: str) -> None:
    assert _problem(_write(tmp_path, "s.yaml", content)).endswith(
        f"the top level must be a mapping of keys to values, got {shown}"
    )


def test_a_yaml_key_given_twice_is_rejected_with_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.yaml", "name: c\ntasks:\n  - id: a\n    type: t\n    id: b\n")
    assert _problem(path) == f"{path}: invalid YAML at line 5, column 5: duplicate key 'id' (first given at line 3)"


def test_a_top_level_yaml_key_given_twice_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.yaml", "providers: {}\nstrategy: x\nproviders: {a: {}}\n")
    assert "line 3, column 1: duplicate key 'providers' (first given at line 1)" in _problem(path, ConfigError)


def test_yaml_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.yaml", "base: &b {priority: 1, model: m}\nmock:\n  <<: *b\n  priority: 2\n")
    assert load_document(path)["mock"] == {"priority": 2, "model": "m"}


def test_a_json_key_given_twice_is_rejected_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "s.json", '{\n  "name": "a",\n  "tasks": [],\n  "name": "b"\n}\n')
    assert _problem(path) == f"{path}: invalid JSON at line 4: duplicate key 'name'"


def test_a_directory_is_not_read_as_a_document(tmp_path: Path) -> None:
    folder = tmp_path / "spec.yaml"
    folder.mkdir()
    assert _problem(folder).endswith("is a directory, not a file")
