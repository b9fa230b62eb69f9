"""Every third-party package the code imports is declared in pyproject.toml, not only pulled in by another one."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("providers", "routing", "ledger", "analytics", "batches", "planning", "configtools", "flows", "api", "cli")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    """`psycopg[binary]>=3.1` -> `psycopg` (PEP 508 names start the string)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, requirement
    return _normalized(match.group())


def _imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - set(PACKAGES)


def test_every_imported_distribution_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():  # lazily imported extras count too
        declared |= {_requirement_name(r) for r in extra}
    owners = packages_distributions()
    missing = {
        module: sorted(owners.get(module, [module]))
        for module in _imported_top_level_modules()
        if not {_normalized(d) for d in owners.get(module, [module])} & declared
    }
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"
