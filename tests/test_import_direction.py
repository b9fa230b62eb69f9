"""Imports run one way (DESIGN.md "Layout and direction of dependencies"), checked on every module's source.

    providers  imports none of our packages
    ledger     may import providers
    routing    imports providers and ledger
    analytics  imports ledger, and from providers only its pure value objects, outcome vocabulary and window
               arithmetic (`providers.models`, `providers.errors`, `providers.usage_window`), so a report judges
               outcomes and forecasts exhaustion with the very definitions routing uses, not copies
    flows      imports all of them; nothing imports flows
    prefect    is imported in flows/ only

Every `import` and `from ... import` counts, wherever it is (module level, inside functions, under
TYPE_CHECKING), relative imports resolved, plus `importlib.import_module("...")` with a literal name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("providers", "ledger", "routing", "analytics", "batches", "planning", "flows", "cli")
# package -> (packages of ours it may import whole, single modules of ours it may import)
ALLOWED: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "providers": (frozenset(), frozenset()),
    "ledger": (frozenset({"providers"}), frozenset()),
    "routing": (frozenset({"providers", "ledger"}), frozenset()),
    "analytics": (
        frozenset({"ledger"}),
        frozenset({"providers.models", "providers.errors", "providers.usage_window"}),
    ),
    "batches": (frozenset({"providers", "ledger", "routing"}), frozenset()),
    "planning": (frozenset({"providers", "ledger", "routing", "analytics", "batches"}), frozenset()),
    "flows": (frozenset({"providers", "ledger", "routing", "analytics", "batches", "planning"}), frozenset()),
    "cli": (frozenset({"providers", "ledger", "routing", "analytics", "batches", "planning", "flows"}), frozenset()),
}
PREFECT_ONLY_IN = "flows"


def _modules(root: Path, package: str) -> Iterator[Path]:
    yield from sorted((root / package).rglob("*.py"))


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, root: Path = ROOT) -> set[str]:
    """Every module name `path` imports (for `from a.b import c`: `a.b` and `a.b.c`, as c may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(root, path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base = ".".join(base_parts[: len(base_parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def violations(package: str, root: Path = ROOT) -> list[str]:
    whole, single = ALLOWED[package]
    found = []
    for path in _modules(root, package):
        for name in sorted(imported_names(path, root)):
            top = name.split(".")[0]
            where = path.relative_to(root)
            if (top == "prefect" or top.startswith("prefect_")) and package != PREFECT_ONLY_IN:
                found.append(f"{where} imports {name}: Prefect is imported in {PREFECT_ONLY_IN}/ only")
            if top not in PACKAGES or top == package:
                continue
            if top in whole or name in single or any(name.startswith(f"{m}.") for m in single):
                continue
            # `from providers import models` names the allowed module through its package.
            if name == top and _only_allowed_members(path, top, single):
                continue
            found.append(f"{where} imports {name}")
    return found


def _only_allowed_members(path: Path, top: str, single: frozenset[str]) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        from_top = isinstance(node, ast.ImportFrom) and node.module == top and node.level == 0
        if from_top and not all(f"{top}.{alias.name}" in single for alias in node.names):
            return False
        if isinstance(node, ast.Import) and any(alias.name == top for alias in node.names):
            return False
    return True


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_documented_direction(package: str) -> None:
    assert violations(package) == []


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The parser must catch lazy, relative, aliased and importlib imports, or the rule above proves nothing."""
    (tmp_path / "analytics").mkdir()
    module = tmp_path / "analytics" / "probe.py"
    module.write_text(
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from routing.router import Router\n"
        "def late():\n    import flows.cli as c\n    return c\n"
        "from .load import load_cube\n"
        "from providers import base\n"
        "from providers import models\n"
        "importlib.import_module('prefect.events')\n",
        encoding="utf-8",
    )
    names = imported_names(module, tmp_path)
    found = violations("analytics", tmp_path)
    assert {"routing.router", "flows.cli", "analytics.load", "providers", "prefect.events"} <= names
    assert any("imports routing.router" in v for v in found)
    assert any("imports flows.cli" in v for v in found)
    assert any("imports providers" in v for v in found)  # providers.base is not one of analytics' helpers
    assert any("Prefect is imported in flows/ only" in v for v in found)
    assert not any("analytics.load" in v or "providers.models" in v for v in found)  # allowed
