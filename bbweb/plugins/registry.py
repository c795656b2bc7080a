"""Plugin discovery through entry points, and ``plugins.toml``.

Built-in hooks, notifiers, auth backends and pages register through the same entry-point
groups a third-party package uses. A plugin that fails to import is reported by name and
left out; it never takes the site down.
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

from bbweb.config.errors import ConfigErrors

log = logging.getLogger("bbweb.plugins")

GROUPS = {
    "change_hooks": "bbweb.change_hooks",
    "notifiers": "bbweb.notifiers",
    "auth": "bbweb.auth",
    "pages": "bbweb.pages",
}
PLUGINS_FILENAME = "plugins.toml"
# A pages plugin's name is the first segment of its URLs (/<name>/...).
_PAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class PluginSettings:
    """What plugins.toml enables: section -> plugin name -> options (True, False or a dict)."""

    path: str | None = None
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        return self.sections.get(name, {})


def load_plugin_settings(basedir: str | Path) -> PluginSettings:
    """Read BASEDIR/plugins.toml (missing file = nothing extra enabled)."""
    path = Path(basedir) / PLUGINS_FILENAME
    if not path.exists():
        return PluginSettings()
    errors = ConfigErrors()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        errors.add(f"{path}: {exc}")
        raise errors from None
    settings = PluginSettings(path=str(path))
    for section, entries in data.items():
        if section not in GROUPS:
            errors.add(f"{path}: unknown section [{section}] (expected one of "
                       f"{', '.join(sorted(GROUPS))})")
            continue
        if not isinstance(entries, dict):
            errors.add(f"{path}: [{section}] must be a table of name = true/false/{{options}}")
            continue
        for name, value in entries.items():
            if not isinstance(value, bool | dict):
                errors.add(f"{path}: [{section}] {name} must be true, false or a table of "
                           "options")
            if section == "pages" and not _PAGE_NAME.match(name):
                errors.add(f"{path}: [pages] {name!r} cannot be a URL path segment (use "
                           "letters, digits, '_', '.' and '-')")
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
