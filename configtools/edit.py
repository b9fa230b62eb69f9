"""Editing a providers file's text in place at the places PyYAML's nodes mark, so comments, order, quoting and
layout outside the edited spans stay exactly as they were (no YAML round-trip library needed: the edits
`repair` makes are renames and scalar or flow-value replacements, each one span of text)."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from configtools.problems import Fix
from configtools.source import Source

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")


@dataclass(frozen=True)
class Edit:
    start: int  # character offsets in the text
    end: int
    text: str


class EditError(Exception):
    """A fix whose place is not in the file as written (e.g. a key that came from a YAML merge)."""


def render_value(value: Any, as_json: bool, style: str | None = None) -> str:
    """`value` as YAML flow text (JSON in a JSON file), a string keeping the quotes it had."""
    if as_json:
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{render_value(k, False)}: {render_value(v, False)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render_value(v, False) for v in value) + "]"
    if isinstance(value, str):
        if style == "'":
            return "'" + value.replace("'", "''") + "'"
        if style == '"' or not _PLAIN.match(value) or yaml.safe_load(value) != value:
            return json.dumps(value)
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def edits_for(source: Source, fix: Fix) -> list[Edit]:
    if fix.insert:
        return [_insert_top(source, fix)]
    edits: list[Edit] = []
    key_node = source.key_nodes.get(fix.path)
    value_node = source.value_nodes.get(fix.path)
    if key_node is None or value_node is None:
        raise EditError(f"{fix.path} is not written in the file")
    if fix.key is not None:
        if not isinstance(key_node, yaml.ScalarNode) or key_node is value_node:
            raise EditError(f"{fix.path} has no key to rename")
        edits.append(
            Edit(
                key_node.start_mark.index,
                key_node.end_mark.index,
                render_value(fix.key, source.is_json, key_node.style),
            )
        )
    if fix.set_value:
        if not isinstance(value_node, yaml.ScalarNode) and not getattr(value_node, "flow_style", False):
            raise EditError(f"{fix.path}: only a one-line value can be replaced")
        style = value_node.style if isinstance(value_node, yaml.ScalarNode) else None
        edits.append(
            Edit(value_node.start_mark.index, value_node.end_mark.index, render_value(fix.value, source.is_json, style))
        )
    return edits


def _insert_top(source: Source, fix: Fix) -> Edit:
    text = source.text
    if source.is_json:
        brace = text.index("{")
        return Edit(brace + 1, brace + 1, f'\n  "{fix.key}": {json.dumps(fix.value)},')
    offset = 0
    for line in text.splitlines(keepends=True):  # after the leading comments, which usually describe the file
        if line.strip() and not line.lstrip().startswith("#"):
            break
        offset += len(line)
    if text.startswith("---", offset):
        offset = text.index("\n", offset) + 1
    return Edit(offset, offset, f"{fix.key}: {render_value(fix.value, False)}\n")


def apply_edits(text: str, edits: list[Edit]) -> str:
    """The text with every edit made; overlapping edits are an error (two fixes for one place)."""
    ordered = sorted(edits, key=lambda e: (e.start, e.end))
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end:
            raise EditError("two fixes touch the same place")
    for edit in reversed(ordered):
        text = text[: edit.start] + edit.text + text[edit.end :]
    return text


__all__ = ["Edit", "EditError", "apply_edits", "edits_for", "render_value"]
