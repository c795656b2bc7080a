"""Asking the master daemon to poll now (``/change_hook/poller``).

A web process never polls: it records a ``poller.poll_requested`` event naming the
pollers, and the daemon's consumer of these events (:mod:`bbweb.daemon.pollers`) wakes
them.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.engine import Connection

from bbweb.engine import events

POLL_REQUESTED = "poller.poll_requested"


def request_polls(conn: Connection, names: Iterable[str]) -> int:
    """Ask the daemon to poll the pollers called ``names`` now (call in a write
    transaction); returns the id of the ``poller.poll_requested`` event recorded."""
    return events.emit_now(conn, POLL_REQUESTED, pollers=sorted(set(names)))
