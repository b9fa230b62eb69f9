"""`config repair`: the fixes `validate` found that are safe to make without asking (a typo with one close
match, an older key, a limit written as a rate, the missing `version`), made in the file's own text so comments
and layout stay. Never a credential: a missing key or login is left for a person."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from configtools.edit import Edit, EditError, apply_edits, edits_for
from configtools.history import Change, record_change
from configtools.problems import Fix, Problem
from configtools.schema import check_document
from configtools.source import Source, parse_source, read_source

_PASSES = 3  # a fixed type can reveal its own keys' typos; each pass fixes what the one before made visible


@dataclass(frozen=True)
class Repair:
    path: Path
    before: str
    after: str
    applied: list[Fix] = field(default_factory=list)
    remaining: list[Problem] = field(default_factory=list)  # the file's problems a person must fix

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        name = str(self.path)
        lines = difflib.unified_diff(
            self.before.splitlines(keepends=True),
            self.after.splitlines(keepends=True),
            fromfile=f"{name} (before)",
            tofile=f"{name} (repaired)",
        )
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def plan_repair(path: Path) -> Repair:
    """What repair would do to the file at `path`; writes nothing."""
    source = read_source(path)
    if source.data is None:
        return Repair(path=path, before=source.text, after=source.text, remaining=source.problems)
    before = source.text
    applied: list[Fix] = []
    problems: list[Problem] = []
    for _ in range(_PASSES):
        _, problems = check_document(source)
        fixes = [p.fix for p in problems if p.fix is not None] + _missing_defaults(source)
        edits, made = _edits(source, fixes)
        if not edits:
            break
        source = parse_source(path, apply_edits(source.text, edits))
        applied += made
    _, problems = check_document(source)
    return Repair(path=path, before=before, after=source.text, applied=applied, remaining=problems)


def _missing_defaults(source: Source) -> list[Fix]:
    data = source.data or {}
    if "version" in data:
        return []
    return [Fix(path=(), key="version", value=1, insert=True, summary="version: 1 (the file format's version)")]


def _edits(source: Source, fixes: list[Fix]) -> tuple[list[Edit], list[Fix]]:
    """The edits for as many fixes as can be made together (a fix whose place overlaps an earlier one's waits
    for the next pass)."""
    edits: list[Edit] = []
    made: list[Fix] = []
    for fix in fixes:
        try:
            candidate = edits_for(source, fix)
            apply_edits(source.text, edits + candidate)
        except EditError:
            continue
        edits += candidate
        made.append(fix)
    return edits, made


def write_repair(repair: Repair) -> Change:
    """Record the file as it is in the history (the backup `config rollback` restores), then write the repair."""
    change = record_change("repair", f"repaired {repair.path}: {len(repair.applied)} fix(es)", [repair.path])
    encoded = repair.after.encode("utf-8")
    raw = repair.path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):  # keep a byte-order mark the file had
        encoded = b"\xef\xbb\xbf" + encoded
    repair.path.write_bytes(encoded)
    return change


__all__ = ["Repair", "plan_repair", "write_repair"]
