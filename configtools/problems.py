"""What `config validate` finds: one typed problem per finding, with where it is and what to do about it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

# What kind of problem; `repair` and the pre-run checks decide by it.
ProblemKind = Literal[
    "syntax",  # the file cannot be read as YAML/JSON
    "duplicate",  # a key or a name given twice
    "unknown_key",
    "deprecated_key",
    "unknown_type",  # a provider type no installed package provides
    "capability",  # a capability that looks like a misspelt task type
    "bad_limit",  # a limit written as `1000/hour` or otherwise not a number per window key
    "invalid_value",  # anything else the models refuse
    "missing_secret",  # an api_key_env with neither the env var nor a Prefect Secret block
    "no_login",  # a Claude config dir without a login
    "missing_executable",
    "unreachable",  # base_url did not answer (--probe)
]
# Problems of the environment this file runs in, not of the file: `switchboard run` warns about them and goes
# on (routing fails over from a provider without its key); `config validate` counts them like any other.
ENVIRONMENT_KINDS: frozenset[str] = frozenset({"missing_secret", "no_login", "missing_executable", "unreachable"})

Path_ = tuple[str | int, ...]


class Fix(BaseModel):
    """A safe edit `config repair` may make to one entry: rename its key, replace its value, or both; or add a
    top-level key that is missing. Values are plain data, written in the file's own syntax."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path_  # the mapping entry or list item it changes; () with `insert`
    key: str | None = None  # the entry's new key
    value: Any = None  # the entry's new value, when `set_value`
    set_value: bool = False
    insert: bool = False  # add `key: value` at the top of the document
    summary: str  # what it does, for the diff's heading


class Problem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    line: int | None  # 1-based; None when the file's text could not be mapped (a JSON file YAML cannot read)
    field: str  # dotted, e.g. providers.claude.subscriptions[0].config_dir; `<file>` for the file as a whole
    kind: ProblemKind
    message: str
    hint: str = ""
    fix: Fix | None = None

    @property
    def environment(self) -> bool:
        return self.kind in ENVIRONMENT_KINDS

    def render(self) -> str:
        """`file:line: field: message` and, indented below, the hint."""
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        text = f"{where}: {self.field}: {self.message}"
        return f"{text}\n    fix: {self.hint}" if self.hint else text

    def one_line(self) -> str:
        """The same on one line, for `switchboard run`'s errors and warnings."""
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field}: {self.message}" + (f" (fix: {self.hint})" if self.hint else "")


def field_name(path: Path_) -> str:
    """`('providers', 'c', 'subscriptions', 0, 'name')` -> `providers.c.subscriptions[0].name`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top level>"


__all__ = ["ENVIRONMENT_KINDS", "Fix", "Problem", "ProblemKind", "field_name"]
