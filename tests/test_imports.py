"""bbweb's layers hold (docs/architecture.md, "Layers"): the import graph is read from the
source with :mod:`ast`, every ``import`` counted wherever it stands (in a function, under
``if TYPE_CHECKING:``), and

* no arrow runs up a layer, nor across to another package of the same layer;
* no module imports another module that, directly or not, imports it back (a package's
  ``__init__`` counts: Python runs it before any of its submodules);
* no import of a bbweb module hides inside a function, except in the command-line entry
  points, which import a command's code when that command runs;
* the tables (``bbweb.db.schema``) are used by the read and write sides only;
* the Buildbot compatibility modules only re-export, and nothing in bbweb imports them.

And, for real, every package imports first in a fresh interpreter (as a script or a plugin
importing ``bbweb.auth`` first would)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bbweb.launcher import DEFAULT_WEB_WORKERS

REPO = Path(__file__).resolve().parents[1]

# Bottom first. A module belongs to the longest name listed that is it or a package holding
# it. The root package ``bbweb`` (its ``__init__``: the version) is its own bottom layer.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("root", ("bbweb",)),
    ("values and storage", ("bbweb.values", "bbweb.db", "bbweb.worker")),
    ("configuration", ("bbweb.mastercfg",)),
    ("read side and write side", ("bbweb.status", "bbweb.engine")),
    ("pollers", ("bbweb.changes",)),
    ("plugins", ("bbweb.plugins", "bbweb.auth")),
    ("serving", ("bbweb.web", "bbweb.daemon")),
    ("application", ("bbweb.app", "bbweb.supervisor")),
    ("commands", ("bbweb.launcher", "bbweb.scaffold", "bbweb.auth.cli", "bbweb.statuslog")),
    ("command line", ("bbweb.cli",)),
    ("Buildbot's import paths", (
        "bbweb.config", "bbweb.buildslave", "bbweb.process", "bbweb.steps",
        "bbweb.schedulers", "bbweb.changes.filter", "bbweb.status.builder",
        "bbweb.status.html", "bbweb.status.web", "bbweb.status.mail", "bbweb.status.words",
        "bbweb.status.client", "bbweb.status.status_push", "bbweb.status.status_gerrit",
        "bbweb.status.github",
    )),
)
COMPAT = "Buildbot's import paths"
# The tables are read and written only by the read side, the write side and the stores the
# auth back ends, the pollers and the daemon keep: pages, dialects and the app read through
# bbweb.status and write through bbweb.engine.
TABLE_USERS = frozenset({"bbweb.db", "bbweb.status", "bbweb.engine", "bbweb.auth",
                         "bbweb.changes", "bbweb.daemon"})
# Command-line entry points may import a command's code inside the function running it,
# so that ``bbweb --help`` or ``bbweb worker`` does not load Flask, SQLAlchemy and the rest.
# bbweb.supervisor (what ``bbweb start`` becomes: gunicorn's arbiter) imports gunicorn, the app
# and the daemon only in the processes that run them.
LAZY_IMPORTS_ALLOWED = frozenset({"bbweb.cli", "bbweb.auth.cli", "bbweb.worker.cli",
                                  "bbweb.supervisor"})

RANK = {unit: rank for rank, (_, units) in enumerate(LAYERS) for unit in units}
LAYER_NAME = {unit: name for name, units in LAYERS for unit in units}


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: list[tuple[str, int, str]] = field(default_factory=list)  # target, line, how


def _modules() -> dict[str, Module]:
    found = {}
    for path in sorted((REPO / "bbweb").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if "migrations" in parts:  # Alembic loads these by file name, not by import
            continue
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = Module(".".join(parts), path, is_package)
    return found


def _resolve(name: str, modules: dict[str, Module]) -> str | None:
    """The module an imported name lives in (``bbweb.a.b.Name`` -> ``bbweb.a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _read_imports(mod: Module, modules: dict[str, Module]) -> None:
    tree = ast.parse(mod.path.read_text(encoding="utf-8"), str(mod.path))
    package = mod.name if mod.is_package else mod.name.rpartition(".")[0]

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:
            up = package
            for _ in range(node.level - 1):
                up = up.rpartition(".")[0]
            base = f"{up}.{base}" if base else up
        # ``from bbweb.web import logs`` imports the module bbweb.web.logs
        return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names]

    def walk(node: ast.AST, how: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                walk(child, "function")
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    walk(ast.Module(body=[stmt], type_ignores=[]), "typing")
                for stmt in child.orelse:
                    walk(ast.Module(body=[stmt], type_ignores=[]), how)
            elif isinstance(child, ast.Import | ast.ImportFrom):
                for name in targets(child):
                    target = _resolve(name, modules) if name.startswith("bbweb") else None
                    if target and target != mod.name:
                        mod.imports.append((target, child.lineno, how))
            else:
                walk(child, how)

    walk(tree, "module")


def _graph() -> dict[str, Module]:
    modules = _modules()
    for mod in modules.values():
        _read_imports(mod, modules)
    return modules


MODULES = _graph()


def unit_of(name: str) -> str:
    if name == "bbweb":
        return "bbweb"
    parts = name.split(".")
    for end in range(len(parts), 1, -1):
        prefix = ".".join(parts[:end])
        if prefix in RANK and prefix != "bbweb":
            return prefix
    raise AssertionError(f"{name} is in no layer: add it to LAYERS (and to "
                         "docs/architecture.md)")


def _with_parents(name: str) -> list[str]:
    """``bbweb.a.b`` runs ``bbweb/__init__``, ``bbweb/a/__init__`` and ``bbweb/a/b``."""
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]


def test_every_module_has_a_layer() -> None:
    for name in MODULES:
        unit_of(name)


def test_no_arrow_runs_up_or_across_a_layer() -> None:
    wrong = []
    for mod in MODULES.values():
        here = unit_of(mod.name)
        for target, line, _how in mod.imports:
            for executed in _with_parents(target):
                there = unit_of(executed)
                if there == here or mod.name.startswith(executed + "."):
                    continue
                if RANK[there] >= RANK[here]:
                    wrong.append(f"{mod.path.relative_to(REPO)}:{line}: {mod.name} "
                                 f"({LAYER_NAME[here]}) imports {executed} "
                                 f"({LAYER_NAME[there]})")
    assert not wrong, "\n".join(wrong)


def test_tables_are_used_by_the_read_and_write_sides_only() -> None:
    wrong = [f"{mod.path.relative_to(REPO)}:{line}: {mod.name} imports the tables "
             "(read them through bbweb.status, write them through bbweb.engine)"
             for mod in MODULES.values() if unit_of(mod.name) not in TABLE_USERS
             for target, line, _how in mod.imports if target == "bbweb.db.schema"]
    assert not wrong, "\n".join(wrong)


def _runtime_edges() -> dict[str, set[str]]:
    """Module -> the modules importing it runs (parents included, its own excluded)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for mod in MODULES.values():
        for target, _line, how in mod.imports:
            if how == "typing":
                continue
            for executed in _with_parents(target):
                if executed != mod.name and not mod.name.startswith(executed + "."):
                    edges[mod.name].add(executed)
    return edges


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(MODULES):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
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
                    work.append((child, iter(sorted(edges[child]))))
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
    return found


def test_no_import_circle() -> None:
    circles = _circles(_runtime_edges())
    assert not circles, "modules importing each other: " + "; ".join(
        " <-> ".join(c) for c in circles)


def test_no_import_hidden_in_a_function() -> None:
    hidden = [f"{mod.path.relative_to(REPO)}:{line}: {mod.name} imports {target} inside a "
              "function" for mod in MODULES.values() if mod.name not in LAZY_IMPORTS_ALLOWED
              for target, line, how in mod.imports if how == "function"]
    assert not hidden, "\n".join(hidden)


def _is_reexport(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return True  # the docstring
    if isinstance(stmt, ast.ImportFrom):
        return (stmt.module or "").startswith("bbweb") or stmt.module == "__future__"
    if isinstance(stmt, ast.Assign | ast.AnnAssign):
        value = stmt.value
        names = [t.id for t in (stmt.targets if isinstance(stmt, ast.Assign) else
                                [stmt.target]) if isinstance(t, ast.Name)]
        if names == ["__all__"]:
            return True
        return isinstance(value, ast.Name)  # an alias: 0.8's second name for a class
    return False


def test_buildbot_paths_only_reexport() -> None:
    """Buildbot 0.8's module paths are there for master.cfg files; what they offer lives
    in bbweb's own packages."""
    wrong = [f"{mod.path.relative_to(REPO)}:{stmt.lineno}: {mod.name} is one of Buildbot's "
             "import paths and may only re-export"
             for mod in MODULES.values() if LAYER_NAME[unit_of(mod.name)] == COMPAT
             for stmt in ast.parse(mod.path.read_text(encoding="utf-8")).body
             if not _is_reexport(stmt)]
    assert not wrong, "\n".join(wrong)


PACKAGES = sorted(f"bbweb.{p.name}" for p in (REPO / "bbweb").iterdir()
                  if (p / "__init__.py").is_file()) + ["bbweb.app", "bbweb.cli"]


@pytest.mark.parametrize("module", PACKAGES)
def test_imports_first(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


# What only a master needs: a worker host with the full package must not load it for
# ``bbweb worker``.
MASTER_ONLY = ("flask", "werkzeug", "jinja2", "sqlalchemy", "alembic", "gunicorn",
               "bbweb.config", "bbweb.db", "bbweb.app", "bbweb.launcher")

# Runs bbweb.cli as ``python -m bbweb.cli ARGS`` does, then prints what was imported.
AS_MAIN = """
import json, runpy, sys
sys.argv[0] = "bbweb"
try:
    runpy.run_module("bbweb.cli", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def cli_modules(*args: str) -> tuple[int, set[str], str]:
    done = subprocess.run([sys.executable, "-c", AS_MAIN, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return found["code"], set(found["modules"]), done.stdout + done.stderr


def loaded(modules: set[str], wanted: str) -> bool:
    return any(m == wanted or m.startswith(wanted + ".") for m in modules)


@pytest.mark.parametrize("args", [
    ["worker", "--help"],
    # runs the worker's own code: no password, so it stops at once with its message
    ["worker", "--master", "http://127.0.0.1:9", "--name", "w", "--basedir", "wb"],
], ids=["help", "run"])
def test_bbweb_worker_imports_nothing_of_the_master(args: list[str], tmp_path: Path) -> None:
    args = [a if a != "wb" else str(tmp_path / "wb") for a in args]
    code, modules, output = cli_modules(*args)
    assert code == (0 if "--help" in args else 2), output
    assert "--master" in output if "--help" in args else "give --password" in output
    assert loaded(modules, "bbweb.worker")
    assert not [m for m in MASTER_ONLY if loaded(modules, m)], output


def test_other_commands_still_load_what_they_need() -> None:
    """The control: the same check sees the master's modules where they are used."""
    code, modules, output = cli_modules("start", "--help")
    assert code == 0 and "--web-workers" in output and f"(default {DEFAULT_WEB_WORKERS})" in output
    assert loaded(modules, "bbweb.launcher") and loaded(modules, "sqlalchemy")
