"""Every package of bbweb imports on its own, in a fresh interpreter: a script or plugin
that imports ``bbweb.auth`` (say) first must not hit a circular import that the app's
usual import order happens to hide."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = sorted(f"bbweb.{p.name}" for p in (REPO / "bbweb").iterdir()
                  if (p / "__init__.py").is_file()) + ["bbweb.app", "bbweb.cli"]


@pytest.mark.parametrize("module", PACKAGES)
def test_imports_first(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
