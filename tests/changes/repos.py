"""Real repositories for the poller tests: git repositories made with ``git init`` and
Subversion repositories made with ``svnadmin create``, changed with the real commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bbweb.changes import load_poller_state
from bbweb.db.schema import buildrequests, changes
from bbweb.engine.change_rows import load_changes

GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"}


def require(*commands: str) -> None:
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:  # scripts/test.sh installs them; a bare run without them skips
        pytest.skip(f"{', '.join(missing)} not installed (scripts/test.sh installs them)")


def run(args: list[str], cwd: Path | str | None = None, env: dict[str, str] | None = None,
        input: bytes | None = None) -> str:
    proc = subprocess.run(args, cwd=cwd, env={**os.environ, **GIT_ENV, **(env or {})},
                          input=input, capture_output=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{args} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


class GitRepo:
    """A non-bare repository whose default branch is ``master``."""

    def __init__(self, path: Path) -> None:
        require("git")
        self.path = path
        path.mkdir(parents=True)
        run(["git", "init", "--quiet", "--initial-branch=master", str(path)])
        self.url = str(path)  # git takes a local path as a repository URL

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        return run(["git", *args], cwd=self.path, env=env)

    def commit(self, message: str, files: dict[str, str] | None = None, *,
               author: str = "Alice Example", email: str = "alice@example.org",
               when: int = 1700000000, remove: list[str] | None = None) -> str:
        for name, content in (files or {}).items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            self.git("add", "--", name)
        for name in remove or []:
            self.git("rm", "--quiet", "--", name)
        stamp = f"{when} +0000"
        self.git("commit", "--quiet", "--allow-empty", "-m", message, env={
            "GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": stamp,
            "GIT_COMMITTER_NAME": "Committer", "GIT_COMMITTER_EMAIL": "c@example.org",
            "GIT_COMMITTER_DATE": stamp})
        return self.head()

    def head(self, ref: str = "HEAD") -> str:
        return self.git("rev-parse", ref).strip()

    def checkout(self, branch: str, new: bool = False) -> None:
        self.git("checkout", "--quiet", *(["-b"] if new else []), branch)


class SvnRepo:
    """A repository (``svnadmin create``) and a working copy of its root."""

    def __init__(self, path: Path, layout: bool = True) -> None:
        require("svn", "svnadmin")
        self.path = path / "repo"
        self.wc = path / "wc"
        path.mkdir(parents=True)
        run(["svnadmin", "create", str(self.path)])
        self.url = self.path.as_uri()
        run(["svn", "checkout", "--quiet", self.url, str(self.wc)])
        if layout:
            for d in ("trunk", "branches", "tags"):
                (self.wc / d).mkdir()
                self.svn("add", "--quiet", d)
            self.commit("standard layout")

    def svn(self, *args: str) -> str:
        return run(["svn", *args, "--non-interactive"], cwd=self.wc)

    def commit(self, message: str, files: dict[str, str] | None = None, *,
               author: str = "alice", remove: list[str] | None = None) -> int:
        for name, content in (files or {}).items():
            target = self.wc / name
            existed = target.exists()
            parents = []
            parent = target.parent
            while not parent.exists():
                parents.append(parent)
                parent = parent.parent
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            if parents:
                self.svn("add", "--quiet", str(parents[-1].relative_to(self.wc)))
            elif not existed:
                self.svn("add", "--quiet", name)
        for name in remove or []:
            self.svn("rm", "--quiet", name)
        self.svn("commit", "--quiet", "-m", message, "--username", author)
        self.svn("update", "--quiet")
        return self.youngest()

    def copy(self, src: str, dst: str, message: str, author: str = "alice") -> int:
        self.svn("copy", "--quiet", f"{self.url}/{src}", f"{self.url}/{dst}", "-m", message,
                 "--username", author)
        self.svn("update", "--quiet")
        return self.youngest()

    def youngest(self) -> int:
        return int(run(["svnlook", "youngest", str(self.path)]).strip())


def poller_cfg(change_source: str, *, scheduler_branch: str | None = "master",
               dialects: str = "{'poller': True}", imports: str = "") -> str:
    """A master.cfg (DB_URL placeholder, like tests/conftest.py) whose change_source is
    the given Python expression; its scheduler builds ``scheduler_branch``."""
    return textwrap.dedent("""
        from bbweb.config import *
        from bbweb.changes.svnpoller import split_file_branches
        IMPORTS
        c = BuildmasterConfig = {}
        c['db_url'] = DB_URL
        c['slaves'] = [BuildSlave('slave1', 'pw1')]
        f = BuildFactory()
        f.addStep(ShellCommand(command=['echo', 'hello']))
        c['builders'] = [BuilderConfig(name='runtests', slavenames=['slave1'], factory=f)]
        c['schedulers'] = [SingleBranchScheduler(name='all', branch=BRANCH,
                                                 builderNames=['runtests'])]
        c['change_source'] = SOURCE
        c['status'] = [WebStatus(http_port=8010, change_hook_dialects=DIALECTS)]
        """).replace("SOURCE", change_source).replace("BRANCH", repr(scheduler_branch)) \
        .replace("DIALECTS", dialects).replace("IMPORTS", imports)


def all_changes(master: Any) -> list[dict[str, Any]]:
    with master.db.read() as conn:
        ids = list(conn.execute(sa.select(changes.c.changeid).order_by(changes.c.changeid))
                   .scalars())
        return load_changes(conn, ids)


def count_buildrequests(master: Any) -> int:
    with master.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(buildrequests)).scalar_one()


def saved_state(master: Any, name: str) -> dict[str, Any]:
    with master.db.read() as conn:
        return load_poller_state(conn, name)
