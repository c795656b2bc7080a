"""Buildbot's ``buildbot.changes`` paths, for master.cfg files migrated by prefix, and the
base of the polling change sources the master daemon runs.

A polling change source (:class:`PollingChangeSource`: ``GitPoller``, ``SVNPoller``) is a
configuration object: the web processes only show its :meth:`~PollingChangeSource.describe`
text, the master daemon (:mod:`bbweb.daemon.pollers`) calls its
:meth:`~PollingChangeSource.poll` every ``pollInterval`` seconds. Everything a poller must
remember between polls (the last revision it saw) lives in the ``poller_state`` table,
written in the same transaction as the changes it produced, so a restart neither skips
nor repeats a change.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import poller_state
from bbweb.engine.changes import add_change
from bbweb.mastercfg.errors import argument_error, caller_location

log = logging.getLogger("bbweb.changes")

# A VCS command that runs longer than this is killed and the poll fails (and is retried
# at the next interval): a hung network connection must not stop a poller for good.
DEFAULT_COMMAND_TIMEOUT = 3600.0


class PollError(RuntimeError):
    """A poll failed (a VCS command failed, or its output made no sense)."""


class PollCancelled(PollError):
    """The poll was stopped (the daemon is stopping or lost its lock): nothing stored."""


def string_or_none(owner: str, label: str, value: Any) -> str | None:
    """``value`` when it is a string or None; otherwise the mistake is recorded for
    checkconfig and None stands in."""
    if value is None or isinstance(value, str):
        return value
    argument_error(f"{owner}: {label} must be a string, not {type(value).__name__}")
    return None


class PollingChangeSource:
    """A change source that the master daemon polls.

    Subclasses set ``src`` and implement :meth:`poll` and :meth:`describe`. ``name``
    identifies the poller: in ``/change_hook/poller?poller=NAME``, in the daemon's log and
    as the key of its saved state (so renaming a poller makes it start over, recording
    the current revisions without producing changes).
    """

    src: str | None = None

    def __init__(self, name: str, pollInterval: float = 600,  # noqa: N803 (Buildbot names)
                 pollAtLaunch: bool = False) -> None:
        self.location = caller_location()
        # A bad argument is recorded and replaced by its default, so that checkconfig goes
        # on and lists every mistake of the file at once.
        if not isinstance(name, str) or not name.strip():
            argument_error(f"{type(self).__name__}: name must be a non-empty string")
            name = type(self).__name__
        if isinstance(pollInterval, bool) or not isinstance(pollInterval, int | float) \
                or not pollInterval > 0:
            argument_error(f"{type(self).__name__}: pollInterval must be a positive number "
                           f"of seconds, not {pollInterval!r}")
            pollInterval = 600
        if not isinstance(pollAtLaunch, bool):
            argument_error(f"{type(self).__name__}: pollAtLaunch must be True or False")
            pollAtLaunch = False
        self.name = name
        self.pollInterval = float(pollInterval)
        self.pollAtLaunch = pollAtLaunch

    def describe(self) -> str:
        return f"{type(self).__name__} {redact_url(self.name)}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redact_url(self.name)!r}>"

    def poll(self, db: Any, config: Any, *, lock: Any = None,
             stop: threading.Event | None = None) -> list[int]:
        """Look for new changes and store them; returns the new change ids, oldest first.

        ``db`` is a :class:`bbweb.db.connection.Database`, ``config`` the
        :class:`~bbweb.mastercfg.master.MasterConfig` (schedulers act on the new changes in
        the same transaction). With ``lock`` (the daemon's), the write is fenced: a daemon
        that lost its lock stores nothing (:class:`~bbweb.daemon.lock.LeaseLost`). Setting
        ``stop`` kills a running VCS command (:class:`PollCancelled`).
        """
        raise NotImplementedError

    # -- helpers for subclasses ----------------------------------------------------------

    def load_state(self, conn: Connection) -> dict[str, Any]:
        return load_poller_state(conn, self.name)

    def save_state(self, conn: Connection, values: dict[str, Any]) -> None:
        save_poller_state(conn, self.name, values)

    def store_changes(self, db: Any, config: Any, lock: Any, expected: dict[str, Any],
                      changes: Sequence[Any], new_state: dict[str, Any]) -> list[int]:
        """Store ``changes`` (ChangeInput objects) and ``new_state`` in one transaction,
        unless the saved state is no longer ``expected`` (another poll of the same poller
        stored first: its result stands, and this one is dropped)."""
        with db.write() as conn:
            if lock is not None:
                lock.check(conn)
            if self.load_state(conn) != expected:
                log.warning("%s: its saved state changed during the poll (another poll of "
                            "the same poller?); dropping this poll's result", self)
                return []
            ids = [add_change(conn, config, change) for change in changes]
            self.save_state(conn, new_state)
        if ids:
            log.info("%s: %d new change%s (%s)", self, len(ids), "" if len(ids) == 1 else "s",
                     ", ".join(map(str, ids)))
        return ids


def redact_url(url: str) -> str:
    """``url`` with the password of ``scheme://user:password@host/...`` hidden, for the
    pages and the log."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}{slash}{path}"


def load_poller_state(conn: Connection, poller: str) -> dict[str, Any]:
    """Everything saved for ``poller`` (key -> JSON value); empty for a new poller."""
    rows = conn.execute(sa.select(poller_state.c.name, poller_state.c.value)
                        .where(poller_state.c.poller == poller))
    return {r.name: json.loads(r.value) for r in rows}


def save_poller_state(conn: Connection, poller: str, values: dict[str, Any]) -> None:
    for key, value in values.items():
        text = json.dumps(value, sort_keys=True)
        updated = conn.execute(
            poller_state.update()
            .where(poller_state.c.poller == poller, poller_state.c.name == key)
            .values(value=text)).rowcount
        if not updated:
            conn.execute(poller_state.insert().values(poller=poller, name=key, value=text))


def run_command(args: Sequence[str], *, cwd: str | None = None,
                env: dict[str, str] | None = None, stdin: bytes | None = None,
                stop: threading.Event | None = None,
                timeout: float = DEFAULT_COMMAND_TIMEOUT) -> bytes:
    """Run a VCS command and return its standard output.

    Raises :class:`PollError` (with the command's standard error) when it fails, cannot
    be started or runs past ``timeout``; :class:`PollCancelled` when ``stop`` is set
    meanwhile (the command is killed).
    """
    if stop is not None and stop.is_set():
        raise PollCancelled(f"{' '.join(args[:2])} was not started: stopping")
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        proc = subprocess.Popen(list(args), cwd=cwd, env=full_env,
                                stdin=subprocess.PIPE if stdin is not None else
                                subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise PollError(f"cannot run {args[0]!r}: {exc}") from None
    deadline = time.monotonic() + timeout
    pending_input = stdin
    while True:
        try:
            out, err = proc.communicate(pending_input, timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            pending_input = None  # already written by the first communicate() call
            if stop is not None and stop.is_set():
                _kill(proc)
                raise PollCancelled(f"{' '.join(args[:2])} was stopped") from None
            if time.monotonic() > deadline:
                _kill(proc)
                raise PollError(f"{' '.join(args[:2])} timed out after {timeout:.0f}s"
                                ) from None
    if proc.returncode != 0:
        message = err.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise PollError(f"{' '.join(args[:2])} failed: {message}")
    return out


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover (an unkillable child)
        pass
