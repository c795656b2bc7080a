"""Worker liveness: a worker silent for longer than its heartbeat timeout is gone.

Its running builds end as EXCEPTION ("slave lost") and their requests return to the queue
(:func:`bbweb.engine.builds.abandon_builds_of_slave`), and it is marked disconnected
(:func:`bbweb.engine.slaves.mark_disconnected`): one transaction per worker, which also
re-checks the worker's ``last_seen`` under a row lock, so a heartbeat that arrived since
the scan keeps the worker alive.

The same pass puts requests whose claim lease ran out unconfirmed back in the queue (a
claim does that too, but pages should not show a request as claimed for long when no
worker claims), and forgets answers kept for repeated worker requests once no worker can
repeat them any more (:mod:`bbweb.engine.worker_protocol`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import sqlalchemy as sa

from bbweb.daemon.lock import DaemonLock
from bbweb.db.connection import Database
from bbweb.db.schema import buildrequests, slaves, worker_requests
from bbweb.engine import slaves as eslaves
from bbweb.engine.builds import (
    abandon_builds_of_slave,
    release_expired_leases,
    release_leases_of_slave,
)
from bbweb.engine.worker_protocol import REPLAY_KEEP, prune_answers
from bbweb.mastercfg.master import MasterConfig

# Kept answers are forgotten this long after the oldest one's time is up, so that those of
# a burst of builds go in one pass rather than one pass each (they were made seconds apart;
# keeping them a little longer changes nothing: no worker repeats a request that late).
FORGET_TOGETHER = 300.0

log = logging.getLogger("bbweb.daemon.liveness")


@dataclass(frozen=True)
class LostWorker:
    name: str
    silent_for: float | None  # seconds since its last heartbeat (None: never heard)
    abandoned_builds: list[int]


def _timeout(cfg: MasterConfig, name: str, override: float | None) -> float:
    return override if override is not None else eslaves.heartbeat_timeout(cfg, name)


def reap_lost_workers(db: Database, cfg: MasterConfig, *, lock: DaemonLock | None = None,
                      heartbeat_timeout: float | None = None, now: float | None = None
                      ) -> list[LostWorker]:
    """Disconnect every connected worker that has been silent too long and abandon its
    builds. The timeout is each worker's own (from its ``keepalive_interval``, see
    :func:`bbweb.engine.slaves.heartbeat_timeout`) unless ``heartbeat_timeout`` overrides
    it for all.

    Raises :class:`~bbweb.daemon.lock.LeaseLost` when ``lock`` is given and no longer ours.
    """
    now = time.time() if now is None else now
    with db.write() as conn:
        if lock is not None:
            lock.check(conn)
        released = release_expired_leases(conn, now)
        prune_answers(conn, now)
    if released:
        log.info("claim lease(s) on build request(s) %s ran out unconfirmed; queued again",
                 ", ".join(map(str, released)))
    with db.read() as conn:
        if heartbeat_timeout is None:
            candidates = eslaves.find_lost_slaves(conn, cfg, now)
        else:
            candidates = eslaves.find_silent_slaves(conn, heartbeat_timeout, now)
    lost: list[LostWorker] = []
    for sid, name in candidates:
        with db.write() as conn:
            if lock is not None:
                lock.check(conn)
            row = conn.execute(sa.select(slaves.c.connected, slaves.c.last_seen)
                               .where(slaves.c.id == sid).with_for_update()).first()
            limit = _timeout(cfg, name, heartbeat_timeout)
            if row is None or not row.connected or (
                    row.last_seen is not None and row.last_seen >= now - limit):
                continue  # it reconnected or heartbeated since the scan
            abandoned = abandon_builds_of_slave(conn, cfg, sid, now=now)
            release_leases_of_slave(conn, sid)
            eslaves.mark_disconnected(conn, sid, name)
        silent = None if row.last_seen is None else now - row.last_seen
        log.warning("worker %r lost: no heartbeat for %s (timeout %.0fs); marked "
                    "disconnected%s", name,
                    "ever" if silent is None else f"{silent:.0f}s", limit,
                    f", builds {', '.join(map(str, abandoned))} ended as EXCEPTION and "
                    "their requests returned to the queue" if abandoned else "")
        lost.append(LostWorker(name, silent, abandoned))
    return lost


def next_due(db: Database, cfg: MasterConfig, *, heartbeat_timeout: float | None = None
             ) -> float | None:
    """When (epoch seconds) :func:`reap_lost_workers` could next find something to do: the
    earliest moment a connected worker's silence reaches its timeout, a claim lease runs
    out, or kept answers are due to be forgotten (:data:`FORGET_TOGETHER` after the oldest
    is old enough); None when nothing is pending. A worker
    that connects or heartbeats later only moves its own moment later, so sleeping until
    then misses nothing but workers that connect meanwhile (the daemon's sleep is bounded
    by the shortest heartbeat timeout for them)."""
    moments: list[float] = []
    with db.read() as conn:
        for row in conn.execute(sa.select(slaves.c.name, slaves.c.last_seen)
                                .where(slaves.c.connected.is_(True))):
            if row.last_seen is None:
                return time.time()
            moments.append(row.last_seen + _timeout(cfg, row.name, heartbeat_timeout))
        # in the lease index's order (the first unfinished one), not a scan of every request
        lease = conn.execute(
            sa.select(buildrequests.c.lease_expires_at)
            .where(buildrequests.c.lease_expires_at.isnot(None),
                   buildrequests.c.complete.is_(False))
            .order_by(buildrequests.c.lease_expires_at).limit(1)).scalar()
        oldest = conn.execute(sa.select(sa.func.min(worker_requests.c.created_at))).scalar()
    if lease is not None:
        moments.append(float(lease))
    if oldest is not None:
        moments.append(float(oldest) + REPLAY_KEEP + FORGET_TOGETHER)
    return min(moments) if moments else None


def longest_sleep(cfg: MasterConfig, heartbeat_timeout: float | None = None) -> float:
    """The longest the daemon may go between two liveness passes: the shortest heartbeat
    timeout of any configured worker (a worker that connects and falls silent is then
    found at most one timeout late)."""
    if heartbeat_timeout is not None:
        return heartbeat_timeout
    timeouts = [eslaves.heartbeat_timeout(cfg, name) for name in cfg.slaves]
    return min(timeouts, default=eslaves.DEFAULT_HEARTBEAT_TIMEOUT)
