"""Reading YAML or JSON documents (specs, providers files) with errors that name the file and the place in it.

Stricter than `yaml.safe_load` / `json.loads` in the ways that bite config files: a key given twice in one
mapping is an error (both libraries would silently keep the last one), the text must be UTF-8 (the error says
where it is not), and an empty document says so instead of failing later on a `None`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from routing.errors import InputError

_MERGE_TAG = "tag:yaml.org,2002:merge"
_TYPE_NAMES = {list: "a list", str: "text", int: "a number", float: "a number", bool: "a boolean"}


class _StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that rejects a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            _reject_duplicate_keys(self, node)
        return super().construct_mapping(node, deep=deep)


def _reject_duplicate_keys(loader: _StrictLoader, node: yaml.MappingNode) -> None:
    # Only the keys written in this mapping: keys brought in by a `<<: *anchor` merge may be overridden.
    first_seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            earlier = first_seen.get(key)
        except TypeError:  # an unhashable key: the base constructor reports it
            continue
        if earlier is not None:
            raise ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first given at line {earlier.start_mark.line + 1})",
                key_node.start_mark,
            )
        first_seen[key] = key_node


class _DuplicateJsonKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateJsonKey(key)
        result[key] = value
    return result


def _decode(path: Path, raw: bytes, error_cls: type[InputError]) -> str:
    try:
        return raw.decode("utf-8-sig")  # a leading byte-order mark is harmless; drop it
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line = raw.count(b"\n", 0, exc.start) + 1
        raise error_cls(
            path,
            [
                f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, column {exc.start - line_start + 1} "
                f"(byte offset {exc.start}); save the file as UTF-8"
            ],
        ) from None


def _parse_json(path: Path, text: str, error_cls: type[InputError]) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        raise error_cls(path, [f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from None
    except _DuplicateJsonKey as exc:
        # json does not say where; YAML reads this JSON too and can point at the line.
        try:
            yaml.load(text, Loader=_StrictLoader)
        except yaml.YAMLError as located:
            mark = getattr(located, "problem_mark", None)
            if mark is not None and "duplicate key" in str(getattr(located, "problem", "")):
                raise error_cls(path, [f"invalid JSON at line {mark.line + 1}: duplicate key {exc.key!r}"]) from None
        raise error_cls(path, [f"invalid JSON: duplicate key {exc.key!r}"]) from None


def _parse_yaml(path: Path, text: str, error_cls: type[InputError]) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error_cls(path, [f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}"]) from None


def load_document(path: Path, error_cls: type[InputError] = InputError) -> dict[str, Any]:
    """Parse a `.json` file as JSON and anything else as YAML (a superset of JSON); the top must be a mapping."""
    try:
        raw = path.expanduser().read_bytes()
    except FileNotFoundError:
        raise error_cls(path, ["file not found"]) from None
    except IsADirectoryError:
        raise error_cls(path, ["is a directory, not a file"]) from None
    except OSError as exc:
        raise error_cls(path, [f"cannot read: {exc.strerror}"]) from None
    text = _decode(path, raw, error_cls)
    data = _parse_json(path, text, error_cls) if path.suffix.lower() == ".json" else _parse_yaml(path, text, error_cls)
    if data is None:
        raise error_cls(path, ["the file is empty (no document in it)"])
    if not isinstance(data, dict):
        shown = _TYPE_NAMES.get(type(data), type(data).__name__)
        raise error_cls(path, [f"the top level must be a mapping of keys to values, got {shown}"])
    return data
