"""A providers file as text, data and a map from each key to its line, with every key given twice found at once.

`routing.load_document` stops at the first duplicate key; validation wants them all, and wants lines for
every field, so this reads the file through PyYAML's composer (JSON too: YAML reads it), whose nodes carry
their marks. The same nodes let `config repair` edit the text in place, keeping comments and layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from configtools.problems import Path_, Problem, field_name

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class Source:
    """A providers file read for checking: `data` is None when it could not be parsed (see `problems`)."""

    path: Path
    text: str
    data: dict[str, Any] | None
    # path -> the node of the key (mapping entries) or of the item (list items)
    key_nodes: dict[Path_, yaml.Node] = field(default_factory=dict)
    value_nodes: dict[Path_, yaml.Node] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def is_json(self) -> bool:
        return self.path.suffix.lower() == ".json"

    def line(self, path: Path_) -> int | None:
        """The 1-based line of `path`'s key, else of its nearest ancestor written in the file."""
        for end in range(len(path), 0, -1):
            node = self.key_nodes.get(path[:end])
            if node is not None:
                return node.start_mark.line + 1
        return 1 if self.key_nodes else None


def read_source(path: Path) -> Source:
    """Read `path`; a file that cannot be read or parsed comes back with one `syntax` problem and no data."""
    try:
        raw = path.expanduser().read_bytes()
    except FileNotFoundError:
        return _broken(path, "", None, "file not found", "check the path, or create one with `switchboard init`")
    except IsADirectoryError:
        return _broken(path, "", None, "is a directory, not a file", "name the providers file itself")
    except OSError as exc:
        return _broken(path, "", None, f"cannot read: {exc.strerror}", "check the file's permissions")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, column {column}"
        return _broken(path, "", line, message, "save the file as UTF-8")
    return parse_source(path, text)


def parse_source(path: Path, text: str) -> Source:
    """A providers file's text (as read from `path`, or about to be written there) parsed for checking."""
    source = Source(path=path, text=text, data=None)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        root = None
        if not source.is_json:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else None
            problem = getattr(exc, "problem", None) or str(exc)
            return _broken(path, text, line, f"invalid YAML: {problem}", "fix the syntax at that line")
    if root is not None:
        _walk(source, root, ())
    try:
        data = json.loads(text) if source.is_json else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        return _broken(path, text, exc.lineno, f"invalid JSON: {exc.msg}", "fix the syntax at that line")
    except yaml.YAMLError as exc:  # pragma: no cover - compose above reads the same text
        return _broken(path, text, None, f"invalid YAML: {exc}", "fix the syntax")
    if data is None:
        return _broken(path, text, None, "the file is empty", "write a providers file, or run `switchboard init`")
    if not isinstance(data, dict):
        return _broken(path, text, 1, "the top level must be a mapping of keys to values", "see README, Providers")
    source.data = data
    return source


def _broken(path: Path, text: str, line: int | None, message: str, hint: str) -> Source:
    problem = Problem(file=str(path), line=line, field="<file>", kind="syntax", message=message, hint=hint)
    return Source(path=path, text=text, data=None, problems=[problem])


def _walk(source: Source, node: yaml.Node, path: Path_) -> None:
    if isinstance(node, yaml.MappingNode):
        first: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = _key_text(key_node)
            if key in first:
                source.problems.append(
                    Problem(
                        file=str(source.path),
                        line=key_node.start_mark.line + 1,
                        field=field_name((*path, key)),
                        kind="duplicate",
                        message=f"{key!r} is given twice (first at line {first[key].start_mark.line + 1}); "
                        "the later one silently wins, and only it is checked",
                        hint="keep one of them (rename one if both are meant)",
                    )
                )
                # The loaded data holds the later one, so the map of lines follows it.
                stale = (*path, key)
                for known in [p for p in source.key_nodes if p[: len(stale)] == stale]:
                    del source.key_nodes[known]
                    source.value_nodes.pop(known, None)
            else:
                first[key] = key_node
            source.key_nodes[(*path, key)] = key_node
            source.value_nodes[(*path, key)] = value_node
            _walk(source, value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            source.key_nodes[(*path, index)] = item
            source.value_nodes[(*path, index)] = item
            _walk(source, item, (*path, index))


def _key_text(node: yaml.ScalarNode) -> str:
    """The key as the loaded data has it (YAML reads `1:` as the number 1; the data's keys are compared as text)."""
    return str(node.value)


__all__ = ["Source", "parse_source", "read_source"]
