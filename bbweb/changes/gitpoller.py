"""``buildbot.changes.gitpoller.GitPoller``: watch branches of a remote git repository.

Each poll fetches the watched branches into a bare mirror (``BASEDIR/gitpoller-work`` by
default, shareable by several pollers: each repository's branches live under their own
``refs/bbweb/<hash of repourl>/`` namespace), then makes one change per commit that is
reachable from a branch's new head but from none of the heads recorded at the previous
poll, oldest first. The heads are saved in the database together with the changes, so
a restart neither skips nor repeats a commit. The very first poll (no saved heads) only
records the heads, like Buildbot: history before the poller existed is not built; and a
branch that appears when no recorded head is left to compare with (all watched branches
were missing) gives one change, for its head.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from bbweb.changes import (
    PollError,
    PollingChangeSource,
    redact_url,
    run_command,
    string_or_none,
)
from bbweb.engine.changes import ChangeInput
from bbweb.mastercfg.errors import argument_error

log = logging.getLogger("bbweb.changes.gitpoller")

DEFAULT_WORKDIR = "gitpoller-work"
# Fixed settings for every git command: never prompt for credentials (a poll would hang),
# stable English messages in the log.
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "LANGUAGE": ""}

# One git command at a time per mirror directory (pollers may share one).
_workdir_locks: dict[str, threading.Lock] = {}
_workdir_locks_guard = threading.Lock()


def _workdir_lock(path: str) -> threading.Lock:
    with _workdir_locks_guard:
        return _workdir_locks.setdefault(path, threading.Lock())


class GitPoller(PollingChangeSource):
    """Poll ``repourl`` every ``pollInterval`` seconds for new commits on ``branches``.

    ``branches``: a list of branch names (``'master'`` or ``'refs/heads/master'``),
    ``True`` for every branch, or a callable given each remote ref (``'refs/heads/x'``)
    that returns whether to watch it; default ``['master']``. ``branch='x'`` is the old
    single-branch spelling. ``name`` (default: ``repourl``) identifies the poller in
    ``/change_hook/poller?poller=...`` and keys its saved state.
    """

    src = "git"

    def __init__(self, repourl: str, branches: Any = None, branch: str | None = None,
                 workdir: str | None = None, pollInterval: float = 600,  # noqa: N803
                 gitbin: str = "git", usetimestamps: bool = True,
                 category: str | None = None, project: str | None = None,
                 pollinterval: float | None = None, fetch_refspec: Any = None,
                 encoding: str = "utf-8", pollAtLaunch: bool = False,  # noqa: N803
                 name: str | None = None) -> None:
        # Each bad argument is recorded and replaced by a harmless value, so that
        # checkconfig lists every mistake of the file at once.
        if not isinstance(repourl, str) or not repourl.strip():
            argument_error("GitPoller: repourl must be a non-empty string")
            repourl = "(no repourl)"
        elif repourl.startswith("-"):
            argument_error(f"GitPoller: repourl {repourl!r} must not start with '-'")
        if pollinterval is not None:  # Buildbot's old lowercase spelling
            pollInterval = pollinterval
        super().__init__(name if name is not None else repourl, pollInterval, pollAtLaunch)
        if fetch_refspec is not None:
            argument_error("GitPoller: fetch_refspec is not supported (it was deprecated in "
                           "Buildbot 0.8.7): list the branches to watch in 'branches'")
        if branch is not None and branches is not None:
            argument_error("GitPoller: give 'branches' or 'branch', not both")
        elif branch is not None:
            branches = [branch]
        if branches is None:
            branches = ["master"]
        self.branches: list[str] | bool | Callable[[str], bool] = \
            self._check_branches(branches)
        workdir, category, project = (
            string_or_none("GitPoller", label, value) for label, value in
            (("workdir", workdir), ("category", category), ("project", project)))
        if not isinstance(gitbin, str) or not gitbin:
            argument_error("GitPoller: gitbin must be the git command's name or path")
            gitbin = "git"
        if not isinstance(usetimestamps, bool):
            argument_error("GitPoller: usetimestamps must be True or False")
            usetimestamps = True
        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError):
            argument_error(f"GitPoller: unknown encoding {encoding!r}")
            encoding = "utf-8"
        self.repourl = repourl
        self.workdir = workdir
        self.gitbin = gitbin
        self.usetimestamps = usetimestamps
        self.category = category
        self.project = project or ""
        self.encoding = encoding

    @staticmethod
    def _check_branches(branches: Any) -> Any:
        if branches is True or callable(branches):
            return branches
        if isinstance(branches, str):
            branches = [branches]
        if not isinstance(branches, list | tuple) or not branches:
            argument_error("GitPoller: branches must be a non-empty list of branch names, "
                           "True (every branch) or a callable")
            return ["master"]
        names: list[str] = []
        for b in branches:
            if not isinstance(b, str) or not b.strip() or b.startswith("-"):
                argument_error(f"GitPoller: {b!r} is not a branch name")
                continue
            short = b.removeprefix("refs/heads/")
            if short not in names:
                names.append(short)
        return names

    def describe(self) -> str:
        text = f"GitPoller watching the remote git repository {redact_url(self.repourl)}"
        if self.branches is True:
            text += ", all branches"
        elif callable(self.branches):
            text += ", branches chosen by a filter"
        elif isinstance(self.branches, list):
            text += ", branches: " + ", ".join(self.branches)
        if self.name != self.repourl:
            text += f" (poller {redact_url(self.name)})"
        return text

    # -- polling -------------------------------------------------------------------------

    def mirror_dir(self, basedir: str) -> str:
        return os.path.abspath(os.path.join(basedir, self.workdir or DEFAULT_WORKDIR))

    def ref_prefix(self) -> str:
        """Where this repository's branches live in the mirror."""
        key = hashlib.sha256(self.repourl.encode("utf-8")).hexdigest()[:20]
        return f"refs/bbweb/{key}/"

    def poll(self, db: Any, config: Any, *, lock: Any = None,
             stop: threading.Event | None = None) -> list[int]:
        with db.read() as conn:
            state = self.load_state(conn)
        mirror = self.mirror_dir(config.basedir)
        with _workdir_lock(mirror):
            self._ensure_mirror(mirror, stop)
            heads = self._fetch(mirror, stop)
            last = state.get("lastRev")
            if not isinstance(last, dict):
                log.info("%s: first poll, recording the current heads (%s) without making "
                         "changes", self, ", ".join(f"{b}={r[:12]}" for b, r in
                                                    sorted(heads.items())) or "none")
                changes = []
            else:
                changes = self._new_changes(mirror, last, heads, stop)
        return self.store_changes(db, config, lock, state, changes, {"lastRev": heads})

    def _git(self, mirror: str, args: list[str], stop: threading.Event | None) -> str:
        try:
            out = run_command([self.gitbin, *args], cwd=mirror, env=GIT_ENV, stop=stop)
        except PollError as exc:  # git may quote the URL, password and all
            raise type(exc)(str(exc).replace(self.repourl, redact_url(self.repourl))
                            ) from None
        return out.decode(self.encoding, "replace")

    def _ensure_mirror(self, mirror: str, stop: threading.Event | None) -> None:
        if os.path.isfile(os.path.join(mirror, "HEAD")):
            return
        os.makedirs(mirror, exist_ok=True)
        self._git(mirror, ["init", "--quiet", "--bare", "."], stop)

    def _fetch(self, mirror: str, stop: threading.Event | None) -> dict[str, str]:
        """Fetch the watched branches; returns branch -> head commit (branches that do not
        exist in the repository are left out)."""
        prefix = self.ref_prefix()
        if self.branches is True or callable(self.branches):
            self._git(mirror, ["fetch", "--quiet", "--prune", "--no-tags", "--",
                               self.repourl, f"+refs/heads/*:{prefix}*"], stop)
            heads = self._local_heads(mirror, prefix, stop)
            if callable(self.branches):
                heads = {b: sha for b, sha in heads.items()
                         if self.branches(f"refs/heads/{b}")}
            return heads
        assert isinstance(self.branches, list)
        remote: set[str] = set()
        for line in self._git(mirror, ["ls-remote", "--heads", "--", self.repourl],
                              stop).splitlines():
            _sha, _, ref = line.partition("\t")
            if ref.startswith("refs/heads/"):
                remote.add(ref[len("refs/heads/"):])
        wanted = [b for b in self.branches if b in remote]
        missing = [b for b in self.branches if b not in remote]
        if missing:
            log.info("%s: branch%s %s not in the repository (yet)", self,
                     "es" if len(missing) > 1 else "", ", ".join(missing))
        if not wanted:
            return {}
        self._git(mirror, ["fetch", "--quiet", "--no-tags", "--", self.repourl,
                           *(f"+refs/heads/{b}:{prefix}{b}" for b in wanted)], stop)
        local = self._local_heads(mirror, prefix, stop)
        return {b: local[b] for b in wanted if b in local}

    def _local_heads(self, mirror: str, prefix: str, stop: threading.Event | None
                     ) -> dict[str, str]:
        heads = {}
        out = self._git(mirror, ["for-each-ref", "--format=%(objectname) %(refname)",
                                 prefix], stop)
        for line in out.splitlines():
            sha, _, ref = line.partition(" ")
            if ref.startswith(prefix):
                heads[ref[len(prefix):]] = sha
        return heads

    def _new_changes(self, mirror: str, last: dict[str, str], heads: dict[str, str],
                     stop: threading.Event | None) -> list[Any]:
        # commits reachable from any previously seen head were seen (on some branch)
        known = sorted({rev for rev in last.values()
                        if isinstance(rev, str) and self._have_commit(mirror, rev, stop)})
        changes = []
        for branch in sorted(heads):
            new = heads[branch]
            if last.get(branch) == new:
                continue
            if known:
                revs = self._git(mirror, ["rev-list", "--reverse", new,
                                          *(f"^{rev}" for rev in known), "--"], stop).split()
            else:  # nothing seen to compare with: the new head only, not all history
                revs = [new]
            for rev in revs:
                changes.append(self._change_for(mirror, rev, branch, stop))
        return changes

    def _have_commit(self, mirror: str, rev: str, stop: threading.Event | None) -> bool:
        try:
            self._git(mirror, ["cat-file", "-e", f"{rev}^{{commit}}"], stop)
        except PollError as exc:
            if type(exc) is not PollError:  # cancelled
                raise
            return False
        return True

    def _change_for(self, mirror: str, rev: str, branch: str,
                    stop: threading.Event | None) -> Any:
        out = self._git(mirror, ["log", "-1", "--no-renames", "--name-only", "-z",
                                 "--format=%aN%x00%aE%x00%ct%x00%B%x00", rev, "--"], stop)
        parts = out.split("\0", 4)
        if len(parts) < 5:
            raise PollError(f"unexpected 'git log' output for commit {rev}")
        author_name, author_email, committed, body, rest = parts
        # rest: the commit's NUL terminator, then (when it touched files) a newline and
        # the NUL-separated file names
        rest = rest.removeprefix("\0").removeprefix("\n")
        files = [f for f in rest.split("\0") if f]
        author = f"{author_name} <{author_email}>" if author_email else author_name
        try:
            when: float | None = float(committed) if self.usetimestamps else None
        except ValueError:
            when = None
        return ChangeInput(
            author=author.strip() or "unknown", comments=body.rstrip("\n"), files=files,
            revision=rev, when=when, branch=branch, category=self.category,
            repository=self.repourl, project=self.project, src=self.src)
