"""``GerritStatusPush``: Buildbot 0.8's reviews posted on Gerrit changes, as a notifier of
the master daemon.

Configured with 0.8's arguments (``from bbweb.status.status_gerrit import
GerritStatusPush``), it calls the user's callbacks when a build starts (``startCB``),
when it finishes (``reviewCB``) and when a whole buildset is complete (``summaryCB``),
finds the patchset(s) the build was for (:mod:`.gerrit_changes`) and runs ``gerrit review``
over the system's ssh client (:mod:`.gerrit_ssh`). Each review is decided from the event in
the database and delivered at least once: an unreachable server means trying again
later, a refusal by Gerrit is recorded with its message. What differs from 0.8 on purpose
is listed in docs/compat.md.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
from typing import Any

from bbweb.mastercfg.errors import caller_location, config_error
from bbweb.plugins.notifiers.base import Notification, Notifier
from bbweb.plugins.notifiers.gerrit_changes import (
    NoPatchset,
    NotAGerritChange,
    Patchset,
    patchsets_of,
)
from bbweb.plugins.notifiers.gerrit_ssh import GerritSsh, Review, SshSettings
from bbweb.plugins.notifiers.gerrit_texts import (
    DEFAULT_REVIEW,
    DEFAULT_SUMMARY,
    build_info,
    defaultReviewCB,
    defaultSummaryCB,
)
from bbweb.values.results import Results

log = logging.getLogger("bbweb.notifiers.gerrit")

MESSAGE_LIMIT = 16 * 1024
"""Characters of a review message sent at most (Gerrit's default limit for a comment); a
longer one is cut, with a last line saying so."""

_HOST = re.compile(r"^[A-Za-z0-9_.:%\[\]-]{1,255}$")
_USER = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.@+-]{0,99}$")


def _callable_option(value: Any, option: str) -> Any:
    """A callback or None; from plugins.toml it can be ``"package.module:function"``."""
    if value is None or value is DEFAULT_REVIEW or value is DEFAULT_SUMMARY:
        return value
    if isinstance(value, str):
        module, _, attr = value.partition(":")
        if not module or not attr:
            config_error(f"GerritStatusPush: {option}={value!r} must be a function, or "
                         "'package.module:function' naming one")
        try:
            value = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            config_error(f"GerritStatusPush: {option}={value!r} cannot be imported: {exc}")
    if not callable(value):
        config_error(f"GerritStatusPush: {option} must be a function (or None)")
    return value


def _vote(value: Any, what: str, callback: str) -> int:
    if isinstance(value, bool):  # 0.8's defaults wrote `result == SUCCESS or -1`
        return int(value)
    if not isinstance(value, int):
        raise ValueError(f"{callback} returned {what} {value!r}; it must be a number "
                         "(0 for no vote)")
    return value


def _cut(message: str) -> str:
    message = message.replace("\x00", "")
    if len(message) <= MESSAGE_LIMIT:
        return message
    return (message[:MESSAGE_LIMIT] + f"\n[message cut: it was {len(message)} characters "
            "long]")


def _answer(answer: Any, callback: str) -> tuple[str | None, int, int]:
    """A review or summary callback's ``(message, verified, reviewed)``, checked."""
    if not isinstance(answer, tuple | list) or len(answer) != 3:
        raise ValueError(f"{callback} returned {answer!r}; it must return (message, "
                         "verified, reviewed)")
    message, verified, reviewed = answer
    if message is not None and not isinstance(message, str):
        raise ValueError(f"{callback} returned a message of type {type(message).__name__}; "
                         "it must be a string or None")
    return (None if message is None else _cut(message), _vote(verified, "verified", callback),
            _vote(reviewed, "reviewed", callback))


class GerritStatusPush(Notifier):
    """Reviews on the Gerrit changes builds were made for, sent with ``gerrit review``.

    As in 0.8, ``reviewCB`` and ``summaryCB`` default together: given neither, a summary
    is posted per buildset and nothing per build; given only ``reviewCB``, a review per
    build and no summary; given only ``summaryCB``, the summary only. None turns a
    callback off."""

    plugin_name = "gerrit"
    event_kinds = frozenset({"build.started", "build.finished", "buildset.complete"})

    def __init__(
        self,
        server: str | None = None,
        username: str | None = None,
        reviewCB: Any = DEFAULT_REVIEW,
        startCB: Any = None,
        port: int = 29418,
        reviewArg: Any = None,
        startArg: Any = None,
        summaryCB: Any = DEFAULT_SUMMARY,
        summaryArg: Any = None,
        identity_file: str | None = None,
        *,
        name: str | None = None,
        known_hosts_file: str | None = None,
        timeout: float = 60.0,
        **unknown: Any,
    ) -> None:
        if unknown:
            config_error(f"GerritStatusPush: unknown argument(s) "
                         f"{', '.join(sorted(unknown))}")
        super().__init__(name)
        self.location = caller_location()
        if not isinstance(server, str) or not _HOST.match(server) or server.startswith("-"):
            config_error(f"GerritStatusPush: server={server!r} must be the host name or "
                         "address of Gerrit's ssh interface")
        if not isinstance(username, str) or not _USER.match(username):
            config_error(f"GerritStatusPush: username={username!r} must be the Gerrit user "
                         "name the reviews are posted as (letters, digits, '.', '_', '-', "
                         "'@', '+')")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            config_error(f"GerritStatusPush: port={port!r} must be a port number (1-65535; "
                         "Gerrit's ssh port is 29418)")
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            config_error("GerritStatusPush: timeout must be a positive number of seconds")
        reviewCB = _callable_option(reviewCB, "reviewCB")
        summaryCB = _callable_option(summaryCB, "summaryCB")
        if reviewCB is DEFAULT_REVIEW and summaryCB is DEFAULT_SUMMARY:
            reviewCB, summaryCB = None, defaultSummaryCB
        self.reviewCB: Any = None if reviewCB is DEFAULT_REVIEW else reviewCB
        self.summaryCB: Any = None if summaryCB is DEFAULT_SUMMARY else summaryCB
        self.startCB: Any = _callable_option(startCB, "startCB")
        self.reviewArg, self.startArg, self.summaryArg = reviewArg, startArg, summaryArg
        self.server, self.username, self.port = server, username, port
        self.identity_file = self._existing_file(identity_file, "identity_file")
        self.known_hosts_file = self._existing_file(known_hosts_file, "known_hosts_file")
        self.ssh = GerritSsh(SshSettings(server=str(server), username=str(username), port=port,
                                         identity_file=self.identity_file,
                                         known_hosts_file=self.known_hosts_file,
                                         timeout=float(timeout)))

    def __repr__(self) -> str:
        return f"<GerritStatusPush {self.name!r} to {self.ssh.where}>"

    def _existing_file(self, value: object, option: str) -> str | None:
        """A file option; relative to master.cfg's directory when relative."""
        if value is None:
            return None
        if not isinstance(value, str) or not value or value.startswith("-"):
            config_error(f"GerritStatusPush: {option} must be a file name")
            return None
        path = os.path.expanduser(value)
        if not os.path.isabs(path) and self.location is not None:
            path = os.path.join(os.path.dirname(self.location.filename), path)
        if not os.path.isfile(path):
            config_error(f"GerritStatusPush: {option} {path!r} does not exist")
        return path

    # -- deciding ------------------------------------------------------------------------

    def notifications_for(self, event: dict[str, Any]) -> list[Notification]:
        payload = event["payload"]
        kind = event["kind"]
        if kind == "build.started" and self.startCB is not None:
            return self._on_start(payload)
        if kind == "build.finished" and self.reviewCB is not None:
            return self._on_finish(payload)
        if kind == "buildset.complete" and self.summaryCB is not None:
            return self._on_buildset(payload)
        return []

    def _on_start(self, payload: dict[str, Any]) -> list[Notification]:
        build = self._build(payload)
        if build is None:
            return []
        message = self.startCB(payload["builder"], build, self.startArg)
        if message is not None and not isinstance(message, str):
            raise ValueError(f"startCB returned {type(message).__name__}; it must return a "
                             "string or None")
        return self._reviews("start", build, None if message is None else _cut(message), 0, 0)

    def _on_finish(self, payload: dict[str, Any]) -> list[Notification]:
        build = self._build(payload)
        if build is None:
            return []
        result = payload.get("results", build.getResults())
        answer = self.reviewCB(payload["builder"], build, result, self.master_status,
                               self.reviewArg)
        return self._reviews("review", build, *_answer(answer, "reviewCB"))

    def _on_buildset(self, payload: dict[str, Any]) -> list[Notification]:
        bsid = int(payload["buildsetid"])
        builds = self.master_status.getBuildsOfBuildset(bsid)
        if not builds:
            return []
        infos = sorted((build_info(b, self.master_status) for b in builds),
                       key=lambda i: str(i["name"]))
        result = payload.get("results")
        name = Results[result] if isinstance(result, int) and 0 <= result < len(Results) \
            else str(result)
        answer = self.summaryCB(infos, name, self.master_status, self.summaryArg)
        # the buildset's first build (not the first by name) names the change, as in 0.8
        return self._reviews("summary", builds[0], *_answer(answer, "summaryCB"),
                             buildsetid=bsid)

    def _build(self, payload: dict[str, Any]) -> Any:
        build = self.master_status.getBuildById(int(payload["buildid"]))
        if build is None:
            log.warning("gerrit %r: build %s #%s is gone; no review", self.name,
                        payload.get("builder"), payload.get("number"))
        return build

    def _reviews(self, phase: str, build: Any, message: str | None, verified: int,
                 reviewed: int, buildsetid: int | None = None) -> list[Notification]:
        if message is None:  # the callback chose to say nothing
            return []
        name, number = build.getBuilder().getName(), build.getNumber()
        what = (f"{name} #{number} {phase}" if buildsetid is None
                else f"buildset {buildsetid} summary")
        votes = ", ".join(f"{label} {value:+d}" for label, value in
                          (("Verified", verified), ("Code-Review", reviewed)) if value)
        if votes:
            what += f" ({votes})"
        builder = name if buildsetid is None else None
        build_number = number if buildsetid is None else None
        try:
            patchsets = patchsets_of(build)
        except NotAGerritChange:  # a mixed master's other builds: not ours to record
            return []
        except NoPatchset as exc:
            return [Notification(key=f"{phase}:none", what=what, builder=builder,
                                 build_number=build_number, buildsetid=buildsetid,
                                 skip_reason=str(exc))]
        return [Notification(key=_key(phase, ps), what=what,
                             recipients=[f"{ps.project} {ps.revision}"],
                             payload=Review(ps.project, ps.revision, message, verified,
                                            reviewed),
                             builder=builder, build_number=build_number, buildsetid=buildsetid)
                for ps in patchsets]

    # -- delivering ----------------------------------------------------------------------

    def deliver(self, notification: Notification) -> str:
        review: Review = notification.payload
        return self.ssh.review(review)


def _key(phase: str, patchset: Patchset) -> str:
    """Stable across retries, short enough for the record whatever the project's name."""
    digest = hashlib.sha256(f"{patchset.project}\0{patchset.revision}".encode()).hexdigest()
    return f"{phase}:{patchset.revision[:64]}:{digest[:16]}"


__all__ = ["DEFAULT_REVIEW", "DEFAULT_SUMMARY", "MESSAGE_LIMIT", "GerritStatusPush",
           "defaultReviewCB", "defaultSummaryCB"]
