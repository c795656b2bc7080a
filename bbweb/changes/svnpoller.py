"""``buildbot.changes.svnpoller.SVNPoller``: watch a Subversion repository.

Each poll asks ``svn info --xml`` for the repository's youngest revision and, when it is
newer than the last one seen, reads ``svn log --xml -v`` for the revisions in between,
oldest first, at most ``histmax`` per ``svn log`` call (a poll keeps reading until it is
caught up, so nothing is skipped after a long downtime). Every changed path under
``svnurl`` goes through ``split_file`` (directories with a trailing ``/``, as in Buildbot);
the paths of one revision make one change per branch they belong to (a branch made by
``svn copy`` gives a change on the new branch with no files). The last revision is saved
in the database together with the changes. The first poll only records the youngest
revision, like Buildbot.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
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

log = logging.getLogger("bbweb.changes.svnpoller")


def split_file_alwaystrunk(path: str) -> tuple[None, str]:
    """Every file is on the default branch (``None``): the poller watches one tree."""
    return (None, path)


def split_file_branches(path: str) -> tuple[str | None, str] | None:
    """The usual layout: ``trunk/FILE`` is on the default branch (``None``),
    ``branches/NAME/FILE`` on branch ``'branches/NAME'``; anything else (``tags/``...) is
    ignored."""
    pieces = path.split("/")
    if len(pieces) > 1 and pieces[0] == "trunk":
        return (None, "/".join(pieces[1:]))
    if len(pieces) > 2 and pieces[0] == "branches":
        return ("/".join(pieces[0:2]), "/".join(pieces[2:]))
    return None


def split_file_projects_branches(path: str) -> dict[str, Any] | None:
    """``PROJECT/trunk/FILE`` and ``PROJECT/branches/NAME/FILE``: like
    :func:`split_file_branches` below a first ``project`` level."""
    if "/" not in path:
        return None
    project, rest = path.split("/", 1)
    found = split_file_branches(rest)
    if found is None:
        return None
    branch, relpath = found
    return {"project": project, "branch": branch, "path": relpath}


class SVNPoller(PollingChangeSource):
    """Poll ``svnurl`` every ``pollInterval`` seconds.

    ``split_file(path) -> (branch, relative_path)``, a dict with ``path`` and optionally
    ``branch``, ``project`` and ``repository``, or ``None`` to ignore the path; ``path``
    is relative to ``svnurl``. Default :func:`split_file_alwaystrunk`. ``name`` (default:
    ``svnurl``) identifies the poller in ``/change_hook/poller?poller=...`` and keys its
    saved state.
    """

    src = "svn"

    def __init__(self, svnurl: str, split_file: Callable[[str], Any] | None = None,
                 svnuser: str | None = None, svnpasswd: str | None = None,
                 pollInterval: float = 600, histmax: int = 100,  # noqa: N803
                 svnbin: str = "svn", revlinktmpl: str | None = "", category: str | None = None,
                 project: str | None = "", cachepath: str | None = None,
                 pollinterval: float | None = None, extra_args: list[str] | None = None,
                 pollAtLaunch: bool = False, name: str | None = None) -> None:  # noqa: N803
        # Each bad argument is recorded and replaced by a harmless value, so that
        # checkconfig lists every mistake of the file at once.
        if not isinstance(svnurl, str) or not svnurl.strip():
            argument_error("SVNPoller: svnurl must be a non-empty string")
            svnurl = "(no svnurl)"
        elif svnurl.startswith("-"):
            argument_error(f"SVNPoller: svnurl {svnurl!r} must not start with '-'")
        svnurl = svnurl.rstrip("/")
        if pollinterval is not None:  # Buildbot's old lowercase spelling
            pollInterval = pollinterval
        super().__init__(name if name is not None else svnurl, pollInterval, pollAtLaunch)
        if split_file is not None and not callable(split_file):
            argument_error("SVNPoller: split_file must be a function (e.g. "
                           "split_file_branches)")
            split_file = None
        if isinstance(histmax, bool) or not isinstance(histmax, int) or histmax < 1:
            argument_error(f"SVNPoller: histmax must be a positive integer, not {histmax!r}")
            histmax = 100
        svnuser, svnpasswd, category, project, revlinktmpl, cachepath = (
            string_or_none("SVNPoller", label, value) for label, value in
            (("svnuser", svnuser), ("svnpasswd", svnpasswd), ("category", category),
             ("project", project), ("revlinktmpl", revlinktmpl), ("cachepath", cachepath)))
        if revlinktmpl and "%s" not in revlinktmpl:
            argument_error("SVNPoller: revlinktmpl needs a '%s' for the revision")
            revlinktmpl = ""
        if not isinstance(svnbin, str) or not svnbin:
            argument_error("SVNPoller: svnbin must be the svn command's name or path")
            svnbin = "svn"
        if extra_args is not None and (not isinstance(extra_args, list | tuple) or
                                       not all(isinstance(a, str) for a in extra_args)):
            argument_error("SVNPoller: extra_args must be a list of strings")
            extra_args = None
        self.svnurl = svnurl
        self.split_file = split_file or split_file_alwaystrunk
        self.svnuser = svnuser
        self.svnpasswd = svnpasswd
        self.histmax = histmax
        self.svnbin = svnbin
        self.revlinktmpl = revlinktmpl or ""
        self.category = category
        self.project = project or ""
        self.cachepath = cachepath  # accepted for compatibility: the state is in the db
        self.extra_args = list(extra_args or [])

    def describe(self) -> str:
        text = f"SVNPoller: watching {redact_url(self.svnurl)}"
        if self.name != self.svnurl:
            text += f" (poller {redact_url(self.name)})"
        return text

    # -- polling -------------------------------------------------------------------------

    def _svn(self, args: list[str], stop: threading.Event | None) -> bytes:
        cmd = [self.svnbin, *args, "--xml", "--non-interactive", "--no-auth-cache"]
        stdin = None
        if self.svnuser:
            cmd += ["--username", self.svnuser]
        if self.svnpasswd is not None:
            # never on the command line, where every local user could read it
            cmd.append("--password-from-stdin")
            stdin = self.svnpasswd.encode("utf-8") + b"\n"
        cmd += [*self.extra_args, "--", self.svnurl]
        try:
            return run_command(cmd, stdin=stdin, stop=stop)
        except PollError as exc:  # svn may quote the URL, password and all
            raise type(exc)(str(exc).replace(self.svnurl, redact_url(self.svnurl))
                            ) from None

    def _info(self, stop: threading.Event | None) -> tuple[int, str]:
        """(youngest revision, path of svnurl inside the repository, e.g. '/trunk')."""
        root_el = _parse(self._svn(["info"], stop), "svn info")
        entry = root_el.find("entry")
        root = root_el.findtext("entry/repository/root")
        if entry is None or root is None or not entry.get("revision", "").isdigit():
            raise PollError("unexpected 'svn info' output")
        url = root_el.findtext("entry/url") or self.svnurl
        if not url.startswith(root):
            raise PollError(f"'svn info': the URL {url} is not inside the repository root "
                            f"{root}")
        prefix = urllib.parse.unquote(url[len(root):]).rstrip("/")
        return int(entry.get("revision", "0")), prefix

    def poll(self, db: Any, config: Any, *, lock: Any = None,
             stop: threading.Event | None = None) -> list[int]:
        with db.read() as conn:
            state = self.load_state(conn)
        youngest, prefix = self._info(stop)
        last = state.get("last_rev")
        if not isinstance(last, int):
            log.info("%s: first poll, recording revision %d without making changes", self,
                     youngest)
            return self.store_changes(db, config, lock, state, [], {"last_rev": youngest})
        ids: list[int] = []
        while last < youngest:
            entries = _parse(self._svn(["log", "-v", "--limit", str(self.histmax),
                                        "-r", f"{last + 1}:{youngest}"], stop), "svn log")
            batch = [e for e in entries.findall("logentry")
                     if e.get("revision", "").isdigit() and int(e.get("revision", "0")) > last]
            batch.sort(key=lambda e: int(e.get("revision", "0")))
            full = len(entries.findall("logentry")) >= self.histmax
            new_last = int(batch[-1].get("revision", "0")) if batch and full else youngest
            changes = [ch for entry in batch for ch in self._changes_for(entry, prefix)]
            ids += self.store_changes(db, config, lock, state, changes,
                                      {"last_rev": new_last})
            state = {**state, "last_rev": new_last}
            if new_last <= last:  # pragma: no cover (svn answered nonsense)
                break
            last = new_last
        return ids

    def _changes_for(self, entry: ET.Element, prefix: str) -> list[Any]:
        revision = entry.get("revision", "")
        author = (entry.findtext("author") or "").strip() or "unknown"
        comments = entry.findtext("msg") or ""
        when = _svn_date(entry.findtext("date"))
        grouped: dict[tuple[Any, str, str], list[str]] = {}
        for path_el in entry.findall("paths/path"):
            path = path_el.text or ""
            if prefix:
                if not path.startswith(prefix + "/"):
                    continue
                relative = path[len(prefix) + 1:]
            else:
                relative = path.lstrip("/")
            if not relative:
                continue
            if path_el.get("kind") == "dir":  # like Buildbot: 'branches/1.0/', 'src/'
                relative += "/"
            where = self._split(relative)
            if where is None:
                continue
            branch, relpath, project, repository = where
            files = grouped.setdefault((branch, project, repository), [])
            if relpath and relpath not in files:
                files.append(relpath)
        revlink = self.revlinktmpl % urllib.parse.quote_plus(revision) \
            if self.revlinktmpl else None
        return [ChangeInput(author=author, comments=comments, files=files, revision=revision,
                            when=when, branch=branch, category=self.category,
                            revlink=revlink, repository=repository, project=project,
                            src=self.src)
                for (branch, project, repository), files in grouped.items()]

    def _split(self, relative: str) -> tuple[Any, str, str, str] | None:
        """split_file's answer as (branch, path, project, repository); None to ignore."""
        try:
            found = self.split_file(relative)
        except Exception as exc:
            raise PollError(f"split_file({relative!r}) raised {type(exc).__name__}: {exc}"
                            ) from exc
        if found is None:
            return None
        if isinstance(found, dict):
            if "path" not in found:
                raise PollError(f"split_file({relative!r}) returned a dict without 'path'")
            return (found.get("branch"), str(found["path"]),
                    str(found.get("project") or self.project),
                    str(found.get("repository") or self.svnurl))
        if isinstance(found, tuple | list) and len(found) == 2:
            branch, relpath = found
            return (branch, str(relpath), self.project, self.svnurl)
        raise PollError(f"split_file({relative!r}) returned {found!r}; expected "
                        "(branch, path), a dict or None")


def _parse(data: bytes, what: str) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise PollError(f"cannot parse the output of '{what}': {exc}") from None


def _svn_date(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
