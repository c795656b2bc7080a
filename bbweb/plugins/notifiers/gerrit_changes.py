"""Which Gerrit patchset(s) a build reviews, read from the build's properties.

A build knows it was made for a Gerrit change by its properties, tried in this order:

1. repo (Android) checkouts: ``repo_downloads`` (a list of ``"<project> <change>/<patchset>"``)
   and ``repo_downloaded`` (``"<change>/<patchset> <revision> ..."``, two words per
   download): one review per download. Any mismatch between the two means none at all,
   as in Buildbot 0.8.
2. a Gerrit event (the properties Buildbot's Gerrit change source gave each change, and
   which a change hook or a forced build can carry too): ``event.change.id`` or
   ``event.change.number`` present; the project is ``event.change.project`` (else the
   ``project`` property), the patchset ``event.patchSet.revision``, else the checked-out
   ``got_revision``, else ``revision``, else ``<event.change.number>,<event.patchSet.number>``.
   Buildbot 0.8.9 did not read these; later releases did.
3. a Gerrit checkout step: ``gerrit_branch`` present (its value is not used); the project
   is the ``project`` property, the patchset ``got_revision``, else ``revision``. 0.8.9
   used ``got_revision`` only, which a build does not have when it starts.

The revision ends the ``gerrit review`` command line, where Gerrit reads anything starting
with ``-`` as an option: only a commit id (hexadecimal) or ``<change>,<patchset>`` is
accepted; anything else is reported, not sent. The project is passed as the value of
``--project`` and quoted, so any text is safe there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_REVISION = re.compile(r"^(?:[0-9a-fA-F]{4,64}|[0-9]{1,12},[0-9]{1,6})$")


@dataclass(frozen=True)
class Patchset:
    """One patchset to review: the Gerrit project and the commit (or ``change,patchset``)."""

    project: str
    revision: str


class NoPatchset(Exception):
    """The build names no Gerrit patchset, or one that cannot be reviewed: why."""


class NotAGerritChange(NoPatchset):
    """The build has none of the properties a Gerrit change gives it: it came from
    another source, so there is nothing to review and nothing worth recording."""


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value.strip() else None


def _revision(value: Any, source: str) -> str:
    text = _text(value)
    if text is None:
        raise NoPatchset(f"{source} is not a commit id")
    if not _REVISION.match(text):
        raise NoPatchset(f"{source} {text!r} is neither a commit id nor '<change>,<patchset>'")
    return text


def _project(value: Any, source: str) -> str:
    text = _text(value)
    if text is None:
        raise NoPatchset(f"no Gerrit project: {source} is not set")
    if "\x00" in text:
        raise NoPatchset(f"{source} {text!r} contains a NUL character")
    return text


def _repo_patchsets(downloads: Any, downloaded: Any) -> list[Patchset]:
    if not isinstance(downloads, list | tuple) or not isinstance(downloaded, str):
        raise NoPatchset("repo_downloads must be a list and repo_downloaded a string")
    words = downloaded.split()
    if not downloads or 2 * len(downloads) != len(words):
        raise NoPatchset(f"repo_downloads has {len(downloads)} entries but repo_downloaded "
                         f"has {len(words)} words (two per download expected)")
    found = []
    for i, entry in enumerate(downloads):
        parts = entry.split() if isinstance(entry, str) else []
        if len(parts) != 2:
            raise NoPatchset(f"repo_downloads[{i}] {entry!r} is not '<project> "
                             "<change>/<patchset>'")
        if parts[1] != words[2 * i]:
            raise NoPatchset(f"repo_downloads[{i}] is {parts[1]!r} but repo_downloaded says "
                             f"{words[2 * i]!r}")
        found.append(Patchset(_project(parts[0], f"repo_downloads[{i}]"),
                              _revision(words[2 * i + 1], f"repo_downloaded word {2 * i + 2}")))
    return found


def _checked_out(build: Any) -> tuple[Any, str] | None:
    """``got_revision`` (one codebase only) or the ``revision`` property, with its name."""
    got = build.getProperty("got_revision")
    if isinstance(got, str) and got:
        return got, "got_revision"
    rev = build.getProperty("revision")
    if rev:
        return rev, "the revision property"
    return None


def _event_patchset(build: Any) -> Patchset:
    project = build.getProperty("event.change.project")
    project_source = "event.change.project"
    if project is None:
        project, project_source = build.getProperty("project"), "the project property"
    revision = build.getProperty("event.patchSet.revision")
    source = "event.patchSet.revision"
    if revision is None:
        found = _checked_out(build)
        if found is not None:
            revision, source = found
        else:
            number = _text(build.getProperty("event.change.number"))
            patchset = _text(build.getProperty("event.patchSet.number"))
            if number is None or patchset is None:
                raise NoPatchset("no patchset: none of event.patchSet.revision, "
                                 "got_revision, revision, event.change.number with "
                                 "event.patchSet.number is set")
            revision, source = f"{number},{patchset}", "event.change.number,patchSet.number"
    return Patchset(_project(project, project_source), _revision(revision, source))


def _branch_patchset(build: Any) -> Patchset:
    found = _checked_out(build)
    if found is None:
        raise NoPatchset("gerrit_branch is set but neither got_revision nor revision is")
    return Patchset(_project(build.getProperty("project"), "the project property"),
                    _revision(*found))


def patchsets_of(build: Any) -> list[Patchset]:
    """The patchsets ``build`` reviews (a build status object with ``getProperty``).
    Raises :class:`NoPatchset` saying why there is none."""
    downloads = build.getProperty("repo_downloads")
    downloaded = build.getProperty("repo_downloaded")
    if downloads is not None and downloaded is not None:
        return _repo_patchsets(downloads, downloaded)
    if build.getProperty("event.change.id") is not None \
            or build.getProperty("event.change.number") is not None:
        return [_event_patchset(build)]
    if build.getProperty("gerrit_branch") is not None:
        return [_branch_patchset(build)]
    raise NotAGerritChange("not a Gerrit change: the build has none of the properties "
                           "event.change.id, event.change.number, gerrit_branch, "
                           "repo_downloads")


__all__ = ["NoPatchset", "NotAGerritChange", "Patchset", "patchsets_of"]
