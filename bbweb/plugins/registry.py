"""Plugin discovery through entry points, and ``plugins.toml``.

Built-in hooks, notifiers, auth backends and pages register through the same entry-point
groups a third-party package uses. Only the plugins a master enables are imported; one
that fails to import is reported by name and left out, it never takes the site down.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from bbweb.mastercfg.errors import ConfigErrors, Location

log = logging.getLogger("bbweb.plugins")

GROUPS = {
    "change_hooks": "bbweb.change_hooks",
    "notifiers": "bbweb.notifiers",
    "auth": "bbweb.auth",
    "pages": "bbweb.pages",
}
# What one plugin of each section is, for messages.
KINDS = {
    "change_hooks": "change hook dialect",
    "notifiers": "notifier",
    "auth": "authentication back end",
    "pages": "pages plugin",
}
PLUGINS_FILENAME = "plugins.toml"
# A pages plugin's name is the first segment of its URLs (/<name>/...).
_PAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class PluginSettings:
    """What plugins.toml enables: section -> plugin name -> options (True, False or a dict)."""

    path: str | None = None
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: dict[tuple[str, str | None], int] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        return self.sections.get(name, {})

    def enabled(self, section: str) -> dict[str, Any]:
        """The entries of ``section`` that are not ``false``."""
        return {k: v for k, v in self.section(section).items() if v is not False}

    def location(self, section: str, name: str | None = None) -> Location | None:
        """Where plugins.toml enables ``name`` in ``section`` (or where the section
        starts); None without a plugins.toml."""
        if self.path is None:
            return None
        line = self.lines.get((section, name)) or self.lines.get((section, None), 0)
        return Location(self.path, line)


_HEADER = re.compile(r"^\s*\[(?!\[)\s*(?P<name>[^\]]*?)\s*\]")
_KEY = re.compile(r"""^\s*(?P<key>"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:=|\.)""")


def _unquote(key: str) -> str:
    key = key.strip()
    return key[1:-1] if len(key) > 1 and key[0] == key[-1] and key[0] in "\"'" else key


def _split_dotted(name: str) -> list[str]:
    return [_unquote(part) for part in re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', name)]


def toml_lines(text: str) -> dict[tuple[str, str | None], int]:
    """Line numbers of plugins.toml's sections and entries: ``(section, None)`` for a
    ``[section]`` header, ``(section, name)`` for ``name = ...`` in it, a dotted
    ``name.option = ...`` or a ``[section.name]`` table. tomllib gives values without
    lines, so the file is scanned for them (the first occurrence counts)."""
    lines: dict[tuple[str, str | None], int] = {}
    table: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = _split_dotted(header["name"])
            if len(table) >= 1:
                lines.setdefault((table[0], None), lineno)
            if len(table) >= 2:
                lines.setdefault((table[0], table[1]), lineno)
            continue
        key = _KEY.match(line)
        if key and len(table) == 1:
            lines.setdefault((table[0], _unquote(key["key"])), lineno)
    return lines


def load_plugin_settings(basedir: str | Path) -> PluginSettings:
    """Read BASEDIR/plugins.toml (missing file = nothing extra enabled)."""
    path = Path(basedir) / PLUGINS_FILENAME
    if not path.exists():
        return PluginSettings()
    errors = ConfigErrors()
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        errors.add(f"cannot read {path}: {exc}")
        raise errors from None
    except tomllib.TOMLDecodeError as exc:
        errors.add(f"{path}: {exc}")
        raise errors from None
    settings = PluginSettings(path=str(path), lines=toml_lines(text))
    for section, entries in data.items():
        if section not in GROUPS:
            errors.add(f"unknown section [{section}] (expected one of "
                       f"{', '.join(sorted(GROUPS))})", settings.location(section))
            continue
        if not isinstance(entries, dict):
            errors.add(f"[{section}] must be a table of name = true/false/{{options}}",
                       settings.location(section))
            continue
        for name, value in entries.items():
            if not isinstance(value, bool | dict):
                errors.add(f"[{section}] {name} must be true, false or a table of options",
                           settings.location(section, name))
            if section == "pages" and not _PAGE_NAME.match(name):
                errors.add(f"[pages] {name!r} cannot be a URL path segment (use letters, "
                           "digits, '_', '.' and '-')", settings.location(section, name))
        settings.sections[section] = dict(entries)
    if errors:
        raise errors
    return settings


@dataclass
class LoadedPlugins:
    """Entry points of one group that imported, and the ones that failed (name -> error)."""

    group: str
    plugins: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def discover(section: str, names: Iterable[str] | None = None) -> LoadedPlugins:
    """Import every plugin registered in the group behind ``section`` (only those called
    ``names`` when given, so a broken plugin nobody enabled stays out of the way)."""
    group = GROUPS[section]
    loaded = LoadedPlugins(group)
    only = None if names is None else set(names)
    for ep in entry_points(group=group):
        if ep.name in loaded.plugins or (only is not None and ep.name not in only):
            continue
        try:
            loaded.plugins[ep.name] = ep.load()
        except Exception as exc:  # a broken plugin must not take the site down
            message = f"{type(exc).__name__}: {exc}"
            loaded.failed[ep.name] = message
            log.error("plugin %r (%s = %s) failed to load: %s", ep.name, group, ep.value,
                      message)
    return loaded


def installed_names(section: str) -> list[str]:
    """The names registered in the group behind ``section``, without importing them."""
    return sorted({ep.name for ep in entry_points(group=GROUPS[section])})


def not_installed(section: str, name: str) -> str:
    """The message for an enabled plugin ``name`` no installed distribution provides
    (reported after ``SECTION.name``)."""
    installed = installed_names(section)
    return (f"no such {KINDS[section]} is installed (installed: "
            f"{', '.join(installed) if installed else 'none'})")


def enabled_at(section: str, name: str, settings: PluginSettings, config: Any = None
               ) -> Location | None:
    """Where the user enabled a plugin, for messages: its line in plugins.toml, or for a
    dialect enabled by master.cfg's ``WebStatus(change_hook_dialects=...)`` the line of
    that entry (the WebStatus line when the dict is built elsewhere)."""
    if name in settings.section(section):
        return settings.location(section, name)
    web = getattr(config, "web", None) if section == "change_hooks" else None
    if web is not None and name in getattr(web, "change_hook_dialects", {}):
        return _dialect_line(getattr(web, "location", None), name)
    return settings.location(section)


def _dialect_line(where: Location | None, name: str) -> Location | None:
    if where is None:
        return None
    import ast

    try:
        tree = ast.parse(Path(where.filename).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return where
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or node.lineno != where.lineno:
            continue
        for kw in node.keywords:
            if kw.arg == "change_hook_dialects" and isinstance(kw.value, ast.Dict):
                for key in kw.value.keys:
                    if isinstance(key, ast.Constant) and key.value == name:
                        return Location(where.filename, key.lineno)
    return where
