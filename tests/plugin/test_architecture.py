"""The package's parts and the direction of their imports, read from the source.

Every ``import`` of a plugin module counts, at module level, inside functions and under
``TYPE_CHECKING`` alike: there is no cycle between modules, and a part imports only the
parts below it in ``ORDER`` (the map of the package in docs/developing.md says the same).
An import inside a function is allowed only to keep start-up cheap, and says so in a
``# lazy:`` comment on its line or in the comment right above it (one comment serves the
imports that follow it). Not read: modules named in data (the preloader imports the names of
``distribution.preload.WORKER_STACK`` in its own process), and ``importlib`` calls.

The docstrings' cross-references (``:mod:``, ``:func:``, ...) to the plugin's modules are
checked too: a module that moved must not leave references to where it was.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

import pytest_llm_matrix

PACKAGE = "pytest_llm_matrix"
SOURCE = Path(pytest_llm_matrix.__file__).parent

#: The parts, lowest first: a module may import its own part and the parts before it.
ORDER = (
    "_version",
    "config",
    "simulator",
    "calls",
    "adoption",
    "matrix",
    "distribution",
    "report",
    "top",
)
#: Modules directly in the package: the entry point, the session's milestones, the facade.
TOP = {"__init__", "__main__", "plugin", "session", "tracking", "hookspecs"}
#: Everything in the package besides its modules (.py, .pyi), one by one (paths inside the
#: package), so that nothing else ships unnoticed: a vendored wheel, a stray data file.
#: .ci/run checks the built wheel against the same list.
DATA_FILES = {"py.typed", "report/report_schema.json", "simulator/README.md"}


@dataclasses.dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported plugin module
    line: int
    lazy: bool  # inside a function
    reason: bool  # a "# lazy:" comment on its line, above it, or above the imports before it


def module_name(path: Path, root: Path = SOURCE) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def part_of(module: str) -> str:
    inner = module.split(".")[1:]
    if not inner or (len(inner) == 1 and inner[0] in TOP):
        return "top"
    return inner[0]


def imports_of(path: Path, root: Path, modules: set[str]) -> list[Import]:
    """The plugin modules ``path`` imports (``from pkg import mod`` names the module)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    text = path.read_text()
    lines = text.splitlines()
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        explained = False  # the import just before this one had its reason
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import | ast.ImportFrom):
                explained = (
                    explained
                    or "# lazy:" in lines[child.lineno - 1]
                    or any(line.startswith("# lazy:") for line in comment_above(child.lineno))
                )
                for target in targets(child):
                    if target in modules and target != name:
                        found.append(Import(name, target, child.lineno, in_function, explained))
            else:
                explained = False
            visit(child, nested)

    def comment_above(lineno: int) -> list[str]:
        """The comment lines right above line ``lineno`` (1-based), stripped."""
        found = []
        for line in reversed(lines[: lineno - 1]):
            if not line.strip().startswith("#"):
                break
            found.append(line.strip())
        return found

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        if node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            origin = ".".join([*base, *([node.module] if node.module else [])])
        else:
            origin = node.module or ""
        # ``from pkg import mod`` imports the module; ``from mod import name``, mod itself
        named = [f"{origin}.{alias.name}" for alias in node.names]
        return [n for n in named if n in modules] or [origin]

    visit(ast.parse(text), False)
    return found


def package_imports(root: Path = SOURCE) -> list[Import]:
    files = [p for p in root.rglob("*.py") if "__pycache__" not in p.parts]
    modules = {module_name(p, root) for p in files}
    return [i for p in sorted(files) for i in imports_of(p, root, modules)]


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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
            connect(node)
    return found


def upward(imports: list[Import]) -> list[str]:
    rank = {part: n for n, part in enumerate(ORDER)}
    return [
        f"{i.source}:{i.line} ({part_of(i.source)}) imports {i.target} ({part_of(i.target)})"
        for i in imports
        if rank[part_of(i.target)] > rank[part_of(i.source)]
    ]


def test_every_module_belongs_to_a_part():
    files = [p for p in SOURCE.rglob("*.py") if "__pycache__" not in p.parts]
    assert {part_of(module_name(p)) for p in files} == set(ORDER)


def test_no_import_cycle():
    edges = {(i.source, i.target) for i in package_imports()}
    assert len(edges) > 50  # the graph was read
    assert cycles(edges) == []


def test_imports_run_from_higher_parts_to_lower():
    assert upward(package_imports()) == []


def test_an_import_inside_a_function_says_why():
    unexplained = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in package_imports()
        if i.lazy and not i.reason
    ]
    assert unexplained == []


def unresolved_references(root: Path = SOURCE) -> list[str]:
    """Docstring references to plugin modules and names that do not resolve."""
    found = []
    for path in sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts):
        name = module_name(path, root)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        text = path.read_text()
        for match in re.finditer(r":(?:mod|func|class|meth|data|attr):`~?([\w.]+)`", text):
            target = match.group(1)
            if target.startswith("."):
                target = package + target
            elif not target.startswith(PACKAGE):
                continue  # a name of this module, or of another library
            if not resolves(target):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{name}:{line} {match.group(0)}")
    return found


def resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(value, attribute):
                return False
            value = getattr(value, attribute)
        return True
    return False


def test_docstring_references_resolve():
    assert unresolved_references() == []


def test_a_stale_reference_is_found(tmp_path):
    root = tmp_path / PACKAGE
    (root / "calls").mkdir(parents=True)
    (root / "calls" / "m.py").write_text(
        '"""See :mod:`.exchange`, :func:`pytest_llm_matrix.calls.exchange.nowhere`, '
        ':mod:`.redaction` and :class:`Local`."""\n'
    )
    assert unresolved_references(root) == [
        "pytest_llm_matrix.calls.m:1 :func:`pytest_llm_matrix.calls.exchange.nowhere`",
        "pytest_llm_matrix.calls.m:1 :mod:`.redaction`",
    ]


@pytest.fixture
def fake_package(tmp_path: Path) -> Path:
    root = tmp_path / PACKAGE
    for folder in ("config", "calls", "report"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    return root


def test_the_checks_catch_a_cycle_an_upward_import_and_an_unexplained_lazy_one(fake_package):
    """The checks above are not vacuous: on a package built to break them, they fail."""
    (fake_package / "config" / "a.py").write_text(
        "from pytest_llm_matrix.calls import b\n"  # config -> calls: upward
    )
    (fake_package / "calls" / "b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from pytest_llm_matrix.config.a import x\n"  # closes the cycle a -> b -> a
        "def f():\n"
        "    from ..report import c\n"  # relative, lazy, no reason
        "def g():\n"
        "    x = 1  # lazy: a comment on code explains no import\n"
        "    from pytest_llm_matrix.report import c\n"
        "    # lazy: keeps start-up cheap\n"
        "    from pytest_llm_matrix.report.c import y\n"
        "    from pytest_llm_matrix.report import c\n"
        "    x = 1\n"
        "    from pytest_llm_matrix.report import c\n"
    )
    (fake_package / "report" / "c.py").write_text("import pytest_llm_matrix.config.a\n")
    imports = package_imports(fake_package)
    edges = {(i.source, i.target) for i in imports}
    assert cycles(edges) == [[f"{PACKAGE}.calls.b", f"{PACKAGE}.config.a", f"{PACKAGE}.report.c"]]
    assert upward(imports) == [
        f"{PACKAGE}.calls.b:{line} (calls) imports {PACKAGE}.report.c (report)"
        for line in (5, 8, 10, 11, 13)
    ] + [f"{PACKAGE}.config.a:1 (config) imports {PACKAGE}.calls.b (calls)"]
    assert [(i.line, i.reason) for i in imports if i.lazy] == [
        (5, False),
        (8, False),
        (10, True),
        (11, True),
        (13, False),
    ]


def not_the_plugins(paths: Iterable[str]) -> list[str]:
    """The files (paths inside the package) that are neither modules nor in DATA_FILES."""
    return [p for p in paths if not p.endswith((".py", ".pyi")) and p not in DATA_FILES]


def test_the_package_holds_only_the_plugins_own_files():
    """What git tracks under src/pytest_llm_matrix is modules and the listed data files: a
    third-party wheel was once committed there and shipped in the plugin's wheel."""
    root = Path(__file__).resolve().parents[2]
    git = shutil.which("git")
    if git is None or not (root / "src" / PACKAGE).is_dir():
        pytest.skip("needs git and the repository's source (not an installed wheel)")
    listed = subprocess.run(
        [git, "-C", str(root), "ls-files", "-z", "--", f"src/{PACKAGE}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    tracked = [p.removeprefix(f"src/{PACKAGE}/") for p in listed.stdout.split("\0") if p]
    assert len(tracked) > 50  # the package was listed
    assert set(tracked) >= DATA_FILES  # the list names no file that went
    assert not_the_plugins(tracked) == []


def test_a_file_that_is_not_the_plugins_is_found():
    found = ["calls/client.py", "calls/redis-8.1.0-py3-none-any.whl", "py.typed", "notes.txt"]
    assert not_the_plugins(found) == ["calls/redis-8.1.0-py3-none-any.whl", "notes.txt"]
