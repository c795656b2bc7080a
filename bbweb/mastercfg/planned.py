"""Buildbot 0.8 status targets that bbweb does not have yet, and the message that says so.

A Buildbot 0.8 master.cfg imports its notifiers from ``buildbot.status.*``; after the
prefix is changed to ``bbweb.`` an import of a target bbweb lacks would fail with Python's
"No module named 'bbweb.status.mail'", which reads like a broken installation. The table
below is consulted only after such an import has failed, and only when the module really
cannot be found, so once e.g. ``bbweb/status/mail.py`` exists the import simply works and
this message can no longer appear for it.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import types
from dataclasses import dataclass

from bbweb import __version__


@dataclass(frozen=True)
class PlannedTarget:
    """A Buildbot 0.8 status-target module bbweb will provide under the same name."""

    module: str  # the bbweb module, e.g. "bbweb.status.mail"
    names: tuple[str, ...]  # the classes Buildbot's module offered for c['status']
    purpose: str  # what it did, in a few words


# Every status target of Buildbot 0.8's documentation ships now (PBListener as a
# checkconfig sentence pointing at /json/events); a row goes here while a future one is
# on its way, e.g. PlannedTarget("bbweb.status.tinderbox", ("TinderboxMailNotifier",),
# "mail in Tinderbox's format").
PLANNED_TARGETS: dict[str, PlannedTarget] = {}

_CANNOT_IMPORT = re.compile(
    r"cannot import name '(?P<name>[^']+)' from (?:partially initialized module )?"
    r"'(?P<module>[^']+)'")


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _missing_module(exc: BaseException) -> str | None:
    """The dotted name of the module an ImportError or AttributeError failed to find."""
    if isinstance(exc, ModuleNotFoundError):
        return exc.name
    if isinstance(exc, ImportError):
        # ``from bbweb.status import mail``: Python reports the package and the name
        m = _CANNOT_IMPORT.search(str(exc))
        if m:
            return f"{m['module']}.{m['name']}"
    module = getattr(exc, "obj", None)
    if isinstance(exc, AttributeError) and isinstance(module, types.ModuleType):
        # ``import bbweb.status`` then ``bbweb.status.mail.MailNotifier(...)``
        return f"{module.__name__}.{exc.name}"
    return None


def _imports_at(tree: ast.Module | None, lineno: int) -> list[tuple[str, list[str]]]:
    """(module, imported names) of the import statements covering ``lineno``."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree) if tree is not None else ():
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if not node.lineno <= lineno <= (node.end_lineno or node.lineno):
            continue
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


def _names_text(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _planned_message(target: PlannedTarget, wanted: list[str]) -> str:
    names = [n for n in target.names if n in wanted] or list(target.names)
    verb = "is" if len(names) == 1 else "are"
    return (f"{_names_text(names)} from {target.module} ({target.purpose}) {verb} not "
            f"available yet in this version of bbweb ({__version__}); docs/compat.md lists "
            "the status targets it has")


def _planned_for(module: str) -> PlannedTarget | None:
    """The planned target of ``module`` (or of the package ``module`` lies in), if that
    module is really absent."""
    for name, target in PLANNED_TARGETS.items():
        if (module == name or module.startswith(name + ".")) and not _module_exists(name):
            return target
    return None


def unavailable_target_message(exc: BaseException, tree: ast.Module | None = None,
                               lineno: int = 0) -> str | None:
    """A one-line explanation when ``exc`` (raised by master.cfg at ``lineno``; ``tree`` is
    the file's syntax tree) comes from importing a Buildbot status target that bbweb does
    not provide yet, or from a ``buildbot.`` import left unchanged; None otherwise."""
    module = _missing_module(exc)
    if not module:
        return None
    statements = _imports_at(tree, lineno)
    if module == "buildbot" or module.startswith("buildbot."):
        full = next((m for m, _ in statements if m == "buildbot" or
                     m.startswith("buildbot.")), module)
        ours = "bbweb" + full[len("buildbot"):]
        message = (f"there is no module {full!r} here: bbweb offers Buildbot's names under "
                   f"'bbweb.' (write {ours!r})")
        target = _planned_for(ours)
        if target is not None:
            wanted = next((names for m, names in statements if m == full), [])
            message += "; but " + _planned_message(target, wanted)
        return message
    target = _planned_for(module)
    if target is None:
        return None
    # ``from bbweb.status.status_push import HttpStatusPush`` names the class wanted;
    # ``from bbweb.status import words`` wants the whole module
    wanted = next((names for m, names in statements if m == target.module), [])
    return _planned_message(target, wanted)
