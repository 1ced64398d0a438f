"""The package's shape, checked from its source with `ast` (docs/architecture.md).

Imports inside functions count like any other: a function-local import that closes a loop is
still a circle. Each test names what broke it, file by file.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "loadbench"
# Stage packages, from the top of the pipeline's control down. A package may import those below
# it and never one above it (see docs/architecture.md). Base modules (loadbench/*.py) are below all.
LAYERS = (
    "cli",
    "ui",
    "sweep",
    "drive",
    "scenario",
    "sample",
    "demo",
    "variants",
    "compare",
    "whatif",
    "report",
    "analyze",
    "protocols",
    "load",
    "record",
    "data",
)
# What the stages that only read run directories must never import.
READERS = ("analyze", "report", "compare", "whatif", "variants")
DRIVING = ("drive", "ui", "cli", "scenario", "sweep")
LOCUST = ("locust", "gevent", "geventhttpclient", "flask")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted (a package's __init__ for a package)
    names: tuple[str, ...]  # names taken from it (empty: the module itself)
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> Iterator[Import]:
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            modules = [a.name for a in node.names if f"{target}.{a.name}" in MODULES]
            for sub in modules:
                yield Import(name, f"{target}.{sub}", (), node.lineno)
            names = tuple(a.name for a in node.names if a.name not in modules)
            if names:
                yield Import(name, target, names, node.lineno)


IMPORTS = [i for name in MODULES for i in imports_of(name)]
INTERNAL = [i for i in IMPORTS if i.target in MODULES]


def package_of(module: str) -> str:
    """``loadbench.analyze.stats`` -> ``analyze``; a base module (``loadbench.errors``) -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else ""


def test_no_module_imports_itself_in_a_circle() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in INTERNAL:
        if i.target != i.source:
            graph[i.source].add(i.target)
    # A package's __init__ is imported before any of its modules: an import of a module of a
    # package is an import of the package's __init__ as well.
    for i in INTERNAL:
        parent = i.target.rpartition(".")[0]
        if parent in MODULES and parent != i.source and not i.source.startswith(parent + "."):
            graph[i.source].add(parent)
    circles = strongly_connected(graph)
    assert not circles, "import circles: " + "; ".join(" <-> ".join(sorted(c)) for c in circles)


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the components of more than one module (a circle each)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return out


def test_packages_import_only_downwards() -> None:
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = []
    for i in INTERNAL:
        source, target = package_of(i.source), package_of(i.target)
        if source == target or not target or i.source.endswith("__main__"):
            continue  # `python -m loadbench` is the command's entry point, above every layer
        if not source or rank[target] < rank[source]:
            upward.append(f"{MODULES[i.source].relative_to(PACKAGE.parent)}:{i.line} imports {i.target}")
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


@pytest.mark.parametrize("reader", READERS)
def test_readers_of_run_directories_never_import_the_driver_or_locust(reader: str) -> None:
    bad = [
        f"{MODULES[i.source].relative_to(PACKAGE.parent)}:{i.line} imports {i.target}"
        for i in IMPORTS
        if package_of(i.source) == reader
        and (package_of(i.target) in DRIVING or i.target.split(".")[0] in LOCUST)
    ]
    assert not bad, "\n".join(bad)


def test_no_private_name_crosses_a_file() -> None:
    bad = [
        f"{MODULES[i.source].relative_to(PACKAGE.parent)}:{i.line} takes {n} from {i.target}"
        for i in INTERNAL
        for n in i.names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert not bad, "\n".join(bad)


def test_no_private_attribute_of_another_module_is_used() -> None:
    # `from loadbench.report import plots` then `plots._legend(...)`: the same private crossing.
    bad = []
    for path in MODULES.values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {
            (alias.asname or alias.name): f"{i.module}.{alias.name}"
            for i in ast.walk(tree)
            if isinstance(i, ast.ImportFrom) and i.module and i.module.startswith("loadbench")
            for alias in i.names
            if f"{i.module}.{alias.name}" in MODULES
        }
        aliases |= {
            alias.asname: alias.name
            for i in ast.walk(tree)
            if isinstance(i, ast.Import)
            for alias in i.names
            if alias.asname and alias.name in MODULES
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                bad.append(
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}"
                )
    assert not bad, "\n".join(bad)


def test_no_module_is_over_the_size_limit() -> None:
    big = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in MODULES.values()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"


def test_no_function_is_over_the_size_limit() -> None:
    long = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = length
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_checks_see_the_package() -> None:
    # Guards the checks above against passing on nothing: the layers are all there, and the
    # import walk finds the imports every stage makes.
    assert {package_of(m) for m in MODULES} - {""} == set(LAYERS)
    assert any(
        i.source == "loadbench.analyze.analyzer" and i.target == "loadbench.analyze.stats" for i in INTERNAL
    )
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": set()}) == [{"a", "b"}]
