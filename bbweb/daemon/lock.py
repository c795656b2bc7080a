"""The daemon lock: a lease in ``master_locks`` so that exactly one daemon is active.

A daemon *acquires* the lease when there is no row, when the row has expired, or when the
row is already its own; it *renews* it every few seconds and *releases* it (deletes the
row) on a clean shutdown. A second daemon finds a live row held by someone else and waits:
it polls until the row is released or expires, then takes over.

Race safety. Acquiring is one write transaction: a conditional ``UPDATE ... WHERE holder =
me OR expires_at < now`` and, when no row exists, an ``INSERT`` that conflicts on the
primary key. On PostgreSQL two concurrent UPDATEs serialise on the row lock and the loser
re-evaluates the condition against the winner's new expiry (so it matches nothing), and
two concurrent INSERTs end in one unique violation; on SQLite ``BEGIN IMMEDIATE``
serialises the transactions outright. Either way exactly one daemon wins.

Time. Expiry is measured on the database server's clock (PostgreSQL ``clock_timestamp()``;
SQLite is necessarily on the local host), so clock skew between a daemon and its stand-by
on another host cannot make both think they hold the lease.

Fencing. A daemon stops starting new work locally once ``lease * VALID_FRACTION`` seconds
have passed since its last successful renewal began, well before another daemon could see
the row as expired. Work that must not be done twice (firing timers, reaping workers,
saving a consumer cursor) additionally calls :meth:`DaemonLock.holds` inside its own
transaction: it locks the lease row, so a take-over cannot interleave with that work.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bbweb.db.connection import Database
from bbweb.db.schema import master_locks

log = logging.getLogger("bbweb.daemon.lock")

DAEMON_LOCK_NAME = "daemon"
# A renewal is a write transaction: every 10 s keeps an idle master nearly idle, and a
# stand-by takes over at most 30 s after the active daemon died (at once after a stop).
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_RENEW_INTERVAL = 10.0
# Local validity after a renewal, as a fraction of the lease: the rest is the margin that
# covers a renewal that is slow to commit and the time another daemon needs to notice.
VALID_FRACTION = 0.75


class LeaseLost(RuntimeError):
    """The daemon lock is no longer ours: stop dispatching at once."""


@dataclass(frozen=True)
class LeaseInfo:
    holder: str
    expires_in: float  # seconds; negative once expired


def default_holder() -> str:
    """A name unique to this daemon process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def db_time(conn: Connection) -> float:
    """Now, in epoch seconds, by the clock of the database server."""
    if conn.dialect.name == "postgresql":
        return float(conn.execute(sa.text("SELECT EXTRACT(EPOCH FROM clock_timestamp())"))
                     .scalar_one())
    return time.time()


class DaemonLock:
    """One process's view of the lease named ``name`` (thread-safe to query)."""

    def __init__(self, db: Database, holder: str, *, name: str = DAEMON_LOCK_NAME,
                 lease: float = DEFAULT_LEASE_SECONDS) -> None:
        if lease <= 0:
            raise ValueError("the lease must be positive")
        if not holder or len(holder) > 255:
            raise ValueError("the lock holder must be a non-empty name of at most 255 "
                             "characters")
        self.db = db
        self.holder = holder
        self.name = name
        self.lease = lease
        self._mutex = threading.Lock()
        self._held = False
        self._valid_until = 0.0  # time.monotonic()

    # -- local state ---------------------------------------------------------------------

    @property
    def held(self) -> bool:
        """Whether we believe we hold the lease (acquired, not yet lost or released)."""
        return self._held

    def valid(self) -> bool:
        """Whether new work may start now: held, and renewed recently enough."""
        with self._mutex:
            return self._held and time.monotonic() < self._valid_until

    def _mark_held(self, started: float) -> None:
        with self._mutex:
            self._held = True
            self._valid_until = started + self.lease * VALID_FRACTION

    def mark_lost(self) -> None:
        """Forget the lease locally (it was found to be someone else's)."""
        with self._mutex:
            self._held = False
            self._valid_until = 0.0

    # -- database operations -------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours; False if someone else
        holds it. Database errors other than losing the insert race propagate."""
        started = time.monotonic()
        try:
            with self.db.write() as conn:
                now = db_time(conn)
                got = conn.execute(
                    master_locks.update()
                    .where(master_locks.c.name == self.name,
                           sa.or_(master_locks.c.holder == self.holder,
                                  master_locks.c.expires_at < now))
                    .values(holder=self.holder, expires_at=now + self.lease)
                ).rowcount == 1
                if not got and conn.execute(
                        sa.select(master_locks.c.name)
                        .where(master_locks.c.name == self.name)).first() is None:
                    conn.execute(master_locks.insert().values(
                        name=self.name, holder=self.holder, expires_at=now + self.lease))
                    got = True
        except IntegrityError:
            got = False  # another daemon inserted the row first
        if got:
            self._mark_held(started)
        return got

    def renew(self) -> bool:
        """Extend our lease. False means it is lost (released by force, or taken over
        after it expired); the caller must stop dispatching. A lease that expired while
        nobody took it is still ours and is renewed."""
        renewed = self._lease_from(self.holder)
        if not renewed:
            self.mark_lost()
        return renewed

    def _lease_from(self, holder: str) -> bool:
        """Make the row ``holder``'s (ours, or a killed daemon's) ours with a fresh lease;
        False when the row is not ``holder``'s."""
        started = time.monotonic()
        with self.db.write() as conn:
            now = db_time(conn)
            got = conn.execute(
                master_locks.update()
                .where(master_locks.c.name == self.name, master_locks.c.holder == holder)
                .values(holder=self.holder, expires_at=now + self.lease)
            ).rowcount == 1
        if got:
            self._mark_held(started)
        return got

    def holds(self, conn: Connection) -> bool:
        """Fence for work done in ``conn``'s write transaction: True if the lease row is
        ours, and lock that row until the transaction ends so nobody can take over
        half-way. (An expired row that nobody took is still ours: taking it over would
        need this very row.)"""
        holder = conn.execute(
            sa.select(master_locks.c.holder).where(master_locks.c.name == self.name)
            .with_for_update()
        ).scalar()
        if holder != self.holder:
            self.mark_lost()
            return False
        return True

    def check(self, conn: Connection) -> None:
        """:meth:`holds`, raising :class:`LeaseLost` (which rolls the transaction back)."""
        if not self.holds(conn):
            raise LeaseLost(f"the {self.name!r} lock is no longer held by {self.holder!r}")

    def release(self) -> bool:
        """Give the lease up (clean shutdown) so a stand-by takes over at once. True if
        a row of ours was deleted."""
        self.mark_lost()
        with self.db.write() as conn:
            deleted = conn.execute(master_locks.delete().where(
                master_locks.c.name == self.name, master_locks.c.holder == self.holder)
            ).rowcount
        return bool(deleted)

    def take_over(self, dead_holder: str) -> bool:
        """Take the lease from ``dead_holder``, known to be a process that died without
        releasing it (killed), instead of waiting for its lease to expire. False if the row
        is not (any more) that holder's."""
        return self._lease_from(dead_holder)

    def current(self) -> LeaseInfo | None:
        """Who holds the lease now (whoever it is), or None when nobody does."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(master_locks.c.holder, master_locks.c.expires_at)
                               .where(master_locks.c.name == self.name)).first()
            if row is None:
                return None
            return LeaseInfo(row.holder, float(row.expires_at) - db_time(conn))
