"""Installed distributions for plugin tests, made the way an installer leaves them.

``importlib.metadata`` finds entry points through ``*.dist-info`` directories on
``sys.path``; writing one (METADATA and entry_points.txt) next to the plugin's modules
makes the plugin installed as far as bbweb's discovery can tell, without touching the
shared virtualenv.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest


def write_distribution(site: Path, name: str, version: str,
                       entry_points: Mapping[str, Mapping[str, str]],
                       modules: Mapping[str, str] | None = None) -> Path:
    """Write distribution ``name`` into ``site``: its dist-info with ``entry_points``
    (group -> entry name -> "module:attr") and the source of its ``modules``."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n"
                                   f"Version: {version}\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{k} = {v}" for k, v in entries.items())
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(source)
    return info


@contextmanager
def on_path(site: Path, modules: list[str]) -> Iterator[Path]:
    """``site`` importable in this process and the processes it starts; afterwards it is
    gone from both and ``modules`` are forgotten."""
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(site))
    mp.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    try:
        yield site
    finally:
        mp.undo()
        for module in modules:
            sys.modules.pop(module, None)
