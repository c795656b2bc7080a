"""Scheduler timers: the daemon fires due ``treeStableTimer``, ``Nightly`` and
``Periodic`` schedulers by calling :func:`bbweb.engine.schedulers.tick` about once per
tick interval.

Each tick is one write transaction fenced by the daemon lock, so a timer fires exactly
once even while a stand-by daemon is taking over.
"""

from __future__ import annotations

import logging

from bbweb.daemon.lock import DaemonLock
from bbweb.db.connection import Database
from bbweb.engine import schedulers
from bbweb.mastercfg.master import MasterConfig
from bbweb.mastercfg.schedulers import Nightly, Periodic

log = logging.getLogger("bbweb.daemon.timers")


def has_timers(cfg: MasterConfig) -> bool:
    """Whether any scheduler acts on a timer (otherwise ticking is a no-op and the daemon
    does not take the write lock for it)."""
    return any(isinstance(s, Nightly | Periodic) or getattr(s, "treeStableTimer", None)
               for s in cfg.schedulers.values())


def fire_timers(db: Database, cfg: MasterConfig, lock: DaemonLock | None = None,
                now: float | None = None) -> list[int]:
    """Run one scheduler tick; returns the ids of the buildsets it created.

    Raises :class:`~bbweb.daemon.lock.LeaseLost` (nothing written) when ``lock`` is given
    and no longer ours.
    """
    with db.write() as conn:
        if lock is not None:
            lock.check(conn)
        created = schedulers.tick(conn, cfg, now)
    if created:
        log.info("scheduler timers created buildset%s %s", "s" if len(created) > 1 else "",
                 ", ".join(map(str, created)))
    return created
