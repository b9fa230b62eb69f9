"""Reading YAML or JSON documents (specs, providers files) with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from routing.errors import InputError


def load_document(path: Path, error_cls: type[InputError] = InputError) -> dict[str, Any]:
    """Parse a `.json` file as JSON and anything else as YAML (a superset of JSON); the top must be a mapping."""
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error_cls(path, ["file not found"]) from None
    except OSError as exc:
        raise error_cls(path, [f"cannot read: {exc.strerror}"]) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise error_cls(path, [f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error_cls(path, [f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}"]) from None
    if not isinstance(data, dict):
        raise error_cls(path, [f"the document must be a mapping, got {type(data).__name__}"])
    return data
