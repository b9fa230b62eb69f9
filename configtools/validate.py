"""`config validate` and the checks before every run: the file's problems and its environment's, at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from configtools.environment import environment_problems
from configtools.problems import Problem
from configtools.schema import check_document
from configtools.source import Source, read_source
from providers import SecretResolver, env_secrets
from routing import SwitchboardConfig


@dataclass(frozen=True)
class Validation:
    source: Source
    config: SwitchboardConfig | None  # None when the file itself has problems
    problems: list[Problem]

    @property
    def file_problems(self) -> list[Problem]:
        return [p for p in self.problems if not p.environment]

    @property
    def environment_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.environment]


def validate_file(
    path: Path,
    *,
    secrets: SecretResolver = env_secrets,
    blocks_checked: bool = False,
    probe: bool = False,
    environment: bool = True,
) -> Validation:
    """Every problem of the providers file at `path`, sorted by line. The environment (keys, logins, the CLI,
    and with `probe` each base_url) is checked once the file itself is sound, as only then is it known which
    providers there are."""
    source = read_source(Path(path))
    config, problems = check_document(source)
    if config is not None and environment:
        problems = problems + environment_problems(source, config, secrets, blocks_checked=blocks_checked, probe=probe)
        problems.sort(key=lambda p: (p.line or 0, p.field))
    return Validation(source=source, config=config, problems=problems)


__all__ = ["Validation", "validate_file"]
