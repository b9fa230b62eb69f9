"""Imports run one way (DESIGN.md "Layout and direction of dependencies"), checked on every module's source.

    providers  imports none of our packages
    ledger     imports providers
    routing    imports providers and ledger
    analytics  imports ledger, and from providers only its pure value objects, outcome vocabulary and window
               arithmetic (`PURE_PROVIDER_NAMES`), so a report judges outcomes and forecasts exhaustion with the
               very definitions routing uses, not copies
    batches    imports providers, ledger and routing: the batch core never imports flows or Prefect
    planning   imports providers, ledger, routing and analytics (where the recorded usage meets routing)
    configtools imports providers, ledger and routing: validating, repairing and migrating providers files,
               importing past usage, detecting what `init` can offer (setup tools, Prefect-free)
    flows      imports all of those; Prefect is imported in flows/ only
    api        imports all of those (the HTTP API); only the CLI imports it, to serve it
    cli        imports all of those and api; nothing imports the CLI

Every `import` and `from ... import` counts, wherever it is (module level, inside functions, under
TYPE_CHECKING), relative imports resolved, plus `importlib.import_module("...")` with a literal name. Besides
the direction: other packages import a package through its `__init__` (its `__all__`), never its modules;
tests of a package import only what the package may import (routing's tests never import flows); no module
of ours imports another in a loop; and a function-local import of our own packages says why in a comment.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("providers", "ledger", "routing", "analytics", "batches", "planning", "configtools", "flows", "api", "cli")
# package -> the packages of ours it may import
ALLOWED: dict[str, frozenset[str]] = {
    "providers": frozenset(),
    "ledger": frozenset({"providers"}),
    "routing": frozenset({"providers", "ledger"}),
    "analytics": frozenset({"ledger", "providers"}),
    "batches": frozenset({"providers", "ledger", "routing"}),
    "planning": frozenset({"providers", "ledger", "routing", "analytics"}),
    "configtools": frozenset({"providers", "ledger", "routing"}),
    "flows": frozenset({"providers", "ledger", "routing", "analytics", "batches", "planning"}),
    "api": frozenset({"providers", "ledger", "routing", "analytics", "batches", "planning", "flows"}),
    "cli": frozenset(
        {"providers", "ledger", "routing", "analytics", "batches", "planning", "configtools", "flows", "api"}
    ),
}
# The names analytics may take from providers: value objects, the outcome vocabulary, window arithmetic.
PURE_PROVIDER_NAMES = frozenset(
    {"NOT_ABOUT_THE_PROVIDER", "LIMIT_SPECS", "LimitSpec", "Price", "TokenUsage", "seconds_to_reach", "utc_now"}
)
PREFECT_ONLY_IN = "flows"
# Tests that need more than their package may import, and why.
TEST_EXTRAS: dict[str, frozenset[str]] = {"planning": frozenset({"batches"})}  # they record real runs first


@dataclass(frozen=True)
class Import:
    module: str  # the module (or package) imported, resolved
    names: tuple[str, ...]  # for `from module import a, b`; () for `import module`
    line: int
    in_function: bool


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = ROOT) -> list[Import]:
    """Every import in `path`, with where it stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(root, path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, (), node.lineno, in_function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base = ".".join(base_parts[: len(base_parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append(Import(module, tuple(a.name for a in node.names if a.name != "*"), node.lineno, in_function))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(Import(node.args[0].value, (), node.lineno, in_function))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return found


def imported_names(path: Path, root: Path = ROOT) -> set[str]:
    """Every module name `path` imports (for `from a.b import c`: `a.b` and `a.b.c`, as c may be a module)."""
    names: set[str] = set()
    for imp in imports_of(path, root):
        names.add(imp.module)
        names.update(f"{imp.module}.{name}" for name in imp.names)
    return names


def _modules(root: Path, package: str) -> Iterator[Path]:
    yield from sorted((root / package).rglob("*.py"))


def _ours(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in PACKAGES else None


def violations(package: str, root: Path = ROOT) -> list[str]:
    """Imports in `package` against its direction, Prefect outside flows/, and other packages' modules."""
    found = []
    for path in _modules(root, package):
        where = path.relative_to(root)
        for imp in imports_of(path, root):
            top = imp.module.split(".")[0]
            if (top == "prefect" or top.startswith("prefect_")) and package != PREFECT_ONLY_IN:
                found.append(f"{where}:{imp.line} imports {imp.module}: Prefect is imported in {PREFECT_ONLY_IN}/ only")
            if _ours(imp.module) is None or top == package:
                continue
            if top not in ALLOWED[package]:
                found.append(f"{where}:{imp.line} imports {imp.module}: {package} may not import {top}")
            elif imp.module != top:
                found.append(f"{where}:{imp.line} imports {imp.module}: import {top}'s names through {top}/__init__")
            elif package == "analytics" and top == "providers" and not set(imp.names) <= PURE_PROVIDER_NAMES:
                impure = sorted(set(imp.names) - PURE_PROVIDER_NAMES) or ["the package itself"]
                found.append(
                    f"{where}:{imp.line} imports {', '.join(impure)} from providers: not one of its pure names"
                )
    return found


def test_violations_name_each_kind_of_wrong_import(tmp_path: Path) -> None:
    """The parser must catch lazy, relative, aliased and importlib imports, or the rules above prove nothing."""
    (tmp_path / "analytics").mkdir()
    module = tmp_path / "analytics" / "probe.py"
    module.write_text(
        "import importlib\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from routing.router import Router\n"
        "def late():\n    import cli.app as c\n    return c\n"
        "from .load import load_cube\n"
        "from providers import AIProvider\n"
        "from providers import Price\n"
        "from ledger.store import Ledger\n"
        "importlib.import_module('prefect.events')\n",
        encoding="utf-8",
    )
    names = imported_names(module, tmp_path)
    found = violations("analytics", tmp_path)
    assert {"routing.router", "cli.app", "analytics.load", "providers", "prefect.events"} <= names
    assert any("imports routing.router: analytics may not import routing" in v for v in found)
    assert any("imports cli.app: analytics may not import cli" in v for v in found)
    assert any("AIProvider from providers: not one of its pure names" in v for v in found)
    assert any("imports ledger.store: import ledger's names through ledger/__init__" in v for v in found)
    assert any("Prefect is imported in flows/ only" in v for v in found)
    assert not any("analytics.load" in v or "Price" in v for v in found)  # allowed


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_documented_direction(package: str) -> None:
    assert violations(package) == []


def _project_files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]


def test_only_the_cli_imports_the_api() -> None:
    outside = [p for p in _project_files(*PACKAGES, "bench", "tests") if not _is_cli_code(p) and not _is_api_code(p)]
    importers = [
        f"{p.relative_to(ROOT)}:{imp.line}" for p in outside for imp in imports_of(p) if _ours(imp.module) == "api"
    ]
    assert importers == []


def _is_api_code(path: Path) -> bool:
    return path.is_relative_to(ROOT / "api") or path.is_relative_to(ROOT / "tests" / "api")


def test_nothing_imports_the_cli() -> None:
    """Only the CLI's own modules and its tests import it (the command reaches everything; nothing reaches it)."""
    outside = [p for p in _project_files(*PACKAGES, "bench", "tests") if not _is_cli_code(p)]
    importers = [
        f"{p.relative_to(ROOT)}:{imp.line}" for p in outside for imp in imports_of(p) if _ours(imp.module) == "cli"
    ]
    assert importers == []


def _is_cli_code(path: Path) -> bool:
    return path.is_relative_to(ROOT / "cli") or path.is_relative_to(ROOT / "tests" / "cli")


def _test_import_problem(package: str, imp: Import) -> str | None:
    top = imp.module.split(".")[0]
    if top == "prefect" and "flows" not in ALLOWED[package]:
        return "Prefect, below flows"
    if _ours(imp.module) is None or top == package:
        return None
    if top not in ALLOWED[package] | TEST_EXTRAS.get(package, frozenset()):
        return f"{top}, which {package} may not import"
    return None


@pytest.mark.parametrize("package", [p for p in PACKAGES if p not in ("flows", "api", "cli")])
def test_tests_of_a_package_import_what_it_may_import(package: str) -> None:
    """Routing's tests never import flows, and so on down: a test of a lower package cannot lean on a higher one."""
    found = [
        f"{path.relative_to(ROOT)}:{imp.line} imports {problem}"
        for path in _project_files(f"tests/{package}")
        for imp in imports_of(path)
        if (problem := _test_import_problem(package, imp)) is not None
    ]
    assert found == []


def test_tests_and_benchmarks_import_other_packages_through_their_init() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{imp.line} imports {imp.module}"
        for path in _project_files("bench", "tests")
        for imp in imports_of(path)
        if (top := _ours(imp.module)) is not None
        and imp.module != top
        and not path.is_relative_to(ROOT / "tests" / top)  # a package's own tests may reach its modules
    ]
    assert found == []


# --- no loops ------------------------------------------------------------------------------------------------


def module_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the modules of ours it imports. `from pkg import name` is an edge to `pkg.name` when that is a
    module, else to `pkg` (its __init__)."""
    paths = {_module_name(root, p): p for package in PACKAGES for p in _modules(root, package)}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        edges: set[str] = set()
        for imp in imports_of(path, root):
            if _ours(imp.module) is None:
                continue
            submodules = [f"{imp.module}.{n}" for n in imp.names if f"{imp.module}.{n}" in paths]
            edges.update(submodules)
            if len(submodules) < len(imp.names) or not imp.names:
                edges.add(imp.module if imp.module in paths else imp.module.rpartition(".")[0])
        edges.discard(module)
        graph[module] = edges & set(paths)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_of_ours_imports_another_in_a_loop() -> None:
    assert cycles(module_graph()) == []


def test_a_loop_through_a_function_local_import_is_found(tmp_path: Path) -> None:
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "__init__.py").write_text("")
    (tmp_path / "cli" / "app.py").write_text("def late():\n    from cli import run\n    return run\n")
    (tmp_path / "cli" / "run.py").write_text("from cli.app import late\n")
    (tmp_path / "cli" / "other.py").write_text("from cli import app\n")
    assert cycles(module_graph(tmp_path)) == [["cli.app", "cli.run"]]


# --- function-local imports say why ---------------------------------------------------------------------------


def unexplained_local_imports(root: Path = ROOT) -> list[str]:
    """Function-local imports of our packages with no comment on their line or in the lines just above them."""
    found = []
    for package in PACKAGES:
        for path in _modules(root, package):
            lines = path.read_text(encoding="utf-8").splitlines()
            for imp in imports_of(path, root):
                if not imp.in_function or _ours(imp.module) is None:
                    continue
                above = imp.line - 2
                while above >= 0 and lines[above].strip().startswith(("from ", "import ", "#")):
                    above -= 1
                block = lines[above + 1 : imp.line]
                if not any("#" in line for line in block):
                    found.append(f"{path.relative_to(root)}:{imp.line} {lines[imp.line - 1].strip()}")
    return found


def test_function_local_imports_of_our_packages_say_why() -> None:
    assert unexplained_local_imports() == []


def test_an_unexplained_local_import_is_found(tmp_path: Path) -> None:
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "report.py").write_text(
        "def a():\n    from analytics import x\n    return x\n"
        "def b():\n    # pandas: 0.7 s to import\n    from analytics import y\n    return y\n"
        "def c():\n    from analytics import z  # pandas\n    return z\n",
        encoding="utf-8",
    )
    assert unexplained_local_imports(tmp_path) == ["cli/report.py:2 from analytics import x"]


# --- every package says what it offers --------------------------------------------------------------------------


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_lists_its_public_names(package: str) -> None:
    tree = ast.parse((ROOT / package / "__init__.py").read_text(encoding="utf-8"))
    listed = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets)
    ]
    assert listed, f"{package}/__init__.py has no __all__"
