"""Every package of bbweb imports on its own, in a fresh interpreter: a script or plugin
that imports ``bbweb.auth`` (say) first must not hit a circular import that the app's
usual import order happens to hide."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bbweb.launcher import DEFAULT_WEB_WORKERS

REPO = Path(__file__).resolve().parents[1]
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
