"""A fresh clone of the repository stands alone: everything its tests read is inside it.

The committed HEAD of the checkout these tests run in is cloned with git into an empty
temporary directory (nothing beside it: no data folder a developer happens to have next
to the checkout), and pytest collects the clone's own tests there with this virtualenv's
interpreter. A test module that reads a file from outside the repository at import time
fails collection, and that fails this test. (Uncommitted changes are not in the clone: it
tests what a user who clones gets.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def git(*args: str, cwd: Path) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))
    assert proc.returncode == 0, f"git {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None:
        pytest.fail("git is not installed (scripts/test.sh installs it)")
    if not (REPO / ".git").exists():  # a directory, or a file in a linked worktree
        pytest.skip("not a git checkout (a source archive has no history to clone)")
    head = git("rev-parse", "HEAD", cwd=REPO)
    dest = tmp_path_factory.mktemp("fresh-clone") / "bbweb"
    # Cloning the checkout's path clones what git finds there, a linked worktree included:
    # its HEAD is the one advertised, so the clone checks out this checkout's commit.
    git("clone", "--quiet", "--no-hardlinks", str(REPO), str(dest), cwd=dest.parent)
    if git("rev-parse", "HEAD", cwd=dest) != head:
        git("checkout", "--quiet", "--detach", head, cwd=dest)
    assert git("rev-parse", "HEAD", cwd=dest) == head
    assert sorted(p.name for p in dest.parent.iterdir()) == ["bbweb"]  # nothing beside it
    return dest


def in_clone(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """This virtualenv's Python in the clone, importing the clone's packages (``bbweb``
    and ``tests``) ahead of the checkout the virtualenv was installed from."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BBWEB_BASEDIR")}
    env["PYTHONPATH"] = str(clone)
    return subprocess.run([sys.executable, *args], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_clone_imports_its_own_code(clone):
    proc = in_clone(clone, "-c", "import bbweb, tests; print(bbweb.__file__); "
                                 "print(tests.__file__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(clone / "bbweb" / "__init__.py"),
                                   str(clone / "tests" / "__init__.py")]


def test_pytest_collects_the_clones_tests_without_errors(clone):
    proc = in_clone(clone, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
    output = proc.stdout + proc.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    collected = re.search(r"(\d+) tests? collected", summary)
    assert proc.returncode == 0 and collected and "error" not in summary, output[-5000:]
    assert int(collected.group(1)) > 0, output[-5000:]
