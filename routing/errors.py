"""Input errors that name the file and field at fault, for the CLI to print without a traceback."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


class InputError(Exception):
    """A spec or providers file that cannot be used; the message names the file, field and reason."""

    def __init__(self, source: str | Path, problems: list[str]) -> None:
        self.source = str(source)
        self.problems = problems
        super().__init__(f"{self.source}: " + ("\n  ".join(["", *problems]) if len(problems) > 1 else problems[0]))


class ConfigError(InputError):
    """The providers file is invalid."""


def describe_validation_error(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem, e.g. `providers.mock.failure_rate: Input should be less than or equal to 1`."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in (prefix, *err["loc"]) if part != "")
        got = err.get("input")
        shown = f" (got {got!r})" if err["type"] != "missing" and not isinstance(got, dict | list) else ""
        lines.append(f"{loc or '<top level>'}: {err['msg']}{shown}")
    return lines
