"""The project's import graph: no circle anywhere, and imports point downward by layer.

Every import statement of every .py file under tracker/ and kernels/ counts: top-level and
inside functions, ``import x`` and ``from x import y``, relative imports resolved. Read with
:mod:`ast`, so nothing is imported and the test is quick.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("tracker", "kernels")
# the lowest layer: these import nothing from the commands, the applications or the public API
BASICS = ("tracker.errors", "tracker.config", "tracker.cache", "tracker.process", "tracker.timing",
          "tracker.results", "tracker.geometry")
UPPER = ("tracker.cli", "tracker.apps", "tracker.api")
MAX_ROOT_MODULES = 10


def module_files(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of ``packages`` (folders under ``root``);
    a package's ``__init__.py`` is the package's own name."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imported_names(tree: ast.AST, module: str, is_package: bool, known) -> list[tuple[str, int]]:
    """(dotted name, line) of everything the module's import statements load; for
    ``from X import y`` that is ``X.y`` where that is a module, else ``X``."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                names.append((sub if sub in known else base, node.lineno))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.append((node.args[0].value, node.lineno))     # importlib.import_module("x.y")
    return names


def import_graph(root: Path, packages=PACKAGES) -> tuple[dict[str, set[str]], list[str]]:
    """The graph of the project's own modules under ``root``: module -> the project modules it
    imports (anywhere in the file). Also returns the imports that name a project module which
    does not exist, as "file:line: name"."""
    files = module_files(root, packages)
    graph: dict[str, set[str]] = {name: set() for name in files}
    missing = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, line in _imported_names(tree, module, path.name == "__init__.py", files):
            if name.split(".")[0] not in packages:
                continue                                      # not ours
            if name not in files:
                missing.append(f"{path.relative_to(root)}:{line}: {name}")
                while name not in files and "." in name:      # the nearest existing package
                    name = name.rsplit(".", 1)[0]
                if name not in files:
                    continue
            if name != module:
                graph[module].add(name)
    return graph, missing


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(start):
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _circle_text(graph, component) -> str:
    """One circle through the component, as "a -> b -> ... -> a", and its members."""
    members = set(component)
    start = component[0]
    # shortest way back to start from each of start's imports inside the component
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    return " -> ".join(paths[node] + [start]) + f"  (component: {', '.join(component)})"
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    following.append(child)
        frontier = following
    return ", ".join(component)


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def upward_imports(graph, lower=BASICS, upper=UPPER) -> list[str]:
    """Each module of ``lower`` that reaches a module of ``upper`` (directly or through other
    modules), with the chain of imports."""
    found = []
    for start in sorted(m for m in graph if _within(m, lower)):
        came_from = {start: None}
        frontier = [start]
        while frontier:
            following = []
            for node in frontier:
                for child in sorted(graph[node]):
                    if child in came_from:
                        continue
                    came_from[child] = node
                    if _within(child, upper):
                        chain, step = [], child
                        while step is not None:
                            chain.append(step)
                            step = came_from[step]
                        found.append(" -> ".join(reversed(chain)))
                        continue                           # report the first upper module reached
                    following.append(child)
            frontier = following
    return found


def cli_importers(graph, cli="tracker.cli") -> list[str]:
    return sorted(f"{m} -> {t}" for m in graph if not _within(m, [cli])
                  for t in graph[m] if _within(t, [cli]))


@pytest.fixture(scope="module")
def project():
    return import_graph(REPO)


def test_no_import_circle(project):
    graph, _ = project
    assert len(graph) > 20 and "tracker.api" in graph
    found = circles(graph)
    assert not found, "import circles:\n" + "\n".join(_circle_text(graph, c) for c in found)


def test_imports_name_existing_modules(project):
    _, missing = project
    assert not missing, "imports of project modules that do not exist:\n" + "\n".join(missing)


def test_the_basics_and_geometry_never_import_the_commands_apps_or_api(project):
    graph, _ = project
    found = upward_imports(graph)
    assert not found, "imports pointing upward:\n" + "\n".join(found)


def test_only_the_commands_import_the_commands(project):
    graph, _ = project
    found = cli_importers(graph)
    assert not found, "modules outside tracker/cli importing it:\n" + "\n".join(found)


def test_the_root_of_tracker_keeps_at_most_10_modules():
    root = sorted(p.name for p in (REPO / "tracker").glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, f"{len(root)} modules at the root of tracker/: {root}"


# -- the checks themselves, on a fake package with known faults --------------------------------

def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_graph_finds_a_circle_through_function_level_and_relative_imports(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",                       # b is a module: edge to pkg.b
        "pkg/b.py": "def f():\n    from .sub.c import g\n",       # inside a function, relative
        "pkg/sub/__init__.py": "from . import c\n",               # the package's own module
        "pkg/sub/c.py": "import os\nfrom .. import a\ndef g(): pass\n",
        "pkg/d.py": "from pkg.sub import c\nfrom pkg.sub import c as c2, g\nimport pkg.a\n",
        "pkg/e.py": "from .sub import c\nfrom pkg.gone import x\n",
    })
    graph, missing = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.sub.c"}
    assert graph["pkg.sub"] == {"pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg.a"}
    assert graph["pkg.d"] == {"pkg.sub.c", "pkg.sub", "pkg.a"}       # g is no module: pkg.sub
    assert graph["pkg.e"] == {"pkg.sub.c", "pkg"}
    assert missing == [f"{Path('pkg/e.py')}:2: pkg.gone"]
    assert circles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    assert _circle_text(graph, ["pkg.a", "pkg.b", "pkg.sub.c"]).startswith("pkg.a -> pkg.b -> pkg.sub.c -> pkg.a")


def test_the_graph_of_a_package_without_circles_has_none(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "from .a import f\n",
        "pkg/a.py": "from . import b\n",
        "pkg/b.py": "import pkg.c\n",
        "pkg/c.py": "",
    })
    graph, missing = import_graph(tmp_path, ("pkg",))
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": set()}
    assert circles(graph) == [] and missing == []


def test_the_layer_checks_find_upward_imports(tmp_path):
    _write(tmp_path, {
        "tracker/__init__.py": "",
        "tracker/config.py": "def load():\n    from tracker.inference import engine\n",
        "tracker/inference/__init__.py": "",
        "tracker/inference/engine.py": "from ..cli import common\n",
        "tracker/geometry/__init__.py": "",
        "tracker/geometry/shapes.py": "from tracker import errors\n",
        "tracker/errors.py": "",
        "tracker/cli/__init__.py": "from . import common\n",
        "tracker/cli/common.py": "from tracker.geometry import shapes\n",
    })
    graph, _ = import_graph(tmp_path, ("tracker",))
    assert upward_imports(graph) == ["tracker.config -> tracker.inference.engine -> tracker.cli.common"]
    assert cli_importers(graph) == ["tracker.inference.engine -> tracker.cli.common"]
