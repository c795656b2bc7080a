"""Control actions on workers: pause, unpause, graceful shutdown and ping.

The master only records the wish on the worker's row (with who asked, and when); the
worker learns it through the protocol: a paused or shutting-down worker is granted no
claim, a worker asked to shut down is told so on its next claim and exits, and a ping is
handed to the worker on its next heartbeat or claim poll, answered at once, and the answer
recorded (:func:`answer_ping`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import slaves
from bbweb.engine import events
from bbweb.engine.slaves import ensure_slave


@dataclass
class PingResult:
    """What pinging some workers did: who was asked, who is not connected."""

    pinged: list[str]
    offline: list[str]


def set_paused(conn: Connection, name: str, paused: bool, user: str,
               now: float | None = None) -> bool:
    """Pause (no new builds start on the worker; running ones go on) or unpause it.
    False when it already was in that state."""
    now = time.time() if now is None else now
    sid = ensure_slave(conn, name)
    updated = conn.execute(slaves.update().where(slaves.c.id == sid,
                                                 slaves.c.paused.is_(not paused))
                           .values(paused=paused, paused_by=user, paused_at=now)).rowcount
    if updated:
        events.emit(conn, "slave.paused" if paused else "slave.unpaused", slave=name,
                    user=user)
    return bool(updated)


def request_graceful_shutdown(conn: Connection, name: str, user: str,
                              now: float | None = None) -> bool:
    """The worker finishes what it is building, takes nothing new, and exits when its
    next claim is answered. False when it is not connected or already asked."""
    now = time.time() if now is None else now
    updated = conn.execute(slaves.update().where(
        slaves.c.name == name, slaves.c.connected.is_(True), slaves.c.graceful.is_(False),
    ).values(graceful=True, graceful_by=user, graceful_at=now)).rowcount
    if updated:
        events.emit(conn, "slave.graceful_shutdown", slave=name, user=user)
    return bool(updated)


def clear_graceful(conn: Connection, sid: int) -> None:
    """A (re)connecting worker starts with a clean slate: a graceful shutdown asked of its
    previous run is over."""
    conn.execute(slaves.update().where(slaves.c.id == sid, slaves.c.graceful.is_(True))
                 .values(graceful=False))


def ping_slaves(conn: Connection, names: list[str], user: str,
                now: float | None = None) -> PingResult:
    """Ask each connected worker of ``names`` for a round trip. The previous answer is
    forgotten, so the page shows this ping's fate."""
    now = time.time() if now is None else now
    rows = {r.name: r for r in conn.execute(sa.select(slaves.c.id, slaves.c.name,
                                                      slaves.c.connected)
                                            .where(slaves.c.name.in_(names)))}
    result = PingResult([], [])
    for name in names:
        row = rows.get(name)
        if row is None or not row.connected:
            result.offline.append(name)
            continue
        conn.execute(slaves.update().where(slaves.c.id == row.id).values(
            ping_requested_at=now, ping_requested_by=user, ping_answered_at=None))
        result.pinged.append(name)
    if result.pinged:
        events.emit(conn, "slave.ping", slaves=result.pinged, user=user)
    return result


def pending_ping(conn: Connection, sid: int) -> float | None:
    """The time of an unanswered ping of this worker (its token), or None."""
    row = conn.execute(sa.select(slaves.c.ping_requested_at, slaves.c.ping_answered_at)
                       .where(slaves.c.id == sid)).first()
    if row is None or row.ping_requested_at is None or row.ping_answered_at is not None:
        return None
    return float(row.ping_requested_at)


def answer_ping(conn: Connection, sid: int, name: str, token: float,
                now: float | None = None) -> bool:
    """The worker answered the ping identified by ``token`` (its request time). An
    answer to an older ping (a newer one was asked meanwhile) is ignored."""
    now = time.time() if now is None else now
    updated = conn.execute(slaves.update().where(
        slaves.c.id == sid, slaves.c.ping_requested_at == token,
        slaves.c.ping_answered_at.is_(None),
    ).values(ping_answered_at=now)).rowcount
    if updated:
        events.emit(conn, "slave.pong", slave=name, seconds=round(now - token, 3))
    return bool(updated)


__all__ = ["PingResult", "answer_ping", "clear_graceful", "pending_ping", "ping_slaves",
           "request_graceful_shutdown", "set_paused"]
