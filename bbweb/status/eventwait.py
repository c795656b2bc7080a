"""Waiting for new events: the one place the live stream learns that something happened.

Every stream client of a web process waits here; one thread per process and database
(started with the first waiter, gone a little after the last one left) reads the newest
event id whenever the master's wake-ups (:mod:`bbweb.db.wakeup`: every committed event
notifies its ``events`` channel) say something was committed, and wakes the waiters when
it moved. So a hundred idle clients cost one indexed single-row read per event, not a
hundred, and nothing while nothing happens. :data:`LOOK_SECONDS` is the safety net for a
lost wake-up. :func:`wait_for_events` is the whole interface.
"""

from __future__ import annotations

import threading
import time
import weakref

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db import wakeup
from bbweb.db.connection import Database
from bbweb.db.schema import event_counter

LOOK_SECONDS = 10.0
"""How often the newest event id is read anyway while somebody waits, should a wake-up
be lost (``BBWEB_WAKEUP_FALLBACK`` overrides it, as for every waiter)."""

LINGER_SECONDS = 5.0
"""How long the polling thread stays after the last waiter left (a reconnecting browser
comes back within this)."""


def latest_event_id(db: Database) -> int:
    """The id of the newest committed event (0 before the first)."""
    with db.read() as conn:
        return event_id_in(conn)


def event_id_in(conn: Connection) -> int:
    """The newest event id as seen by a transaction already open (a page reads it first,
    in the transaction of its own data, so nothing falls between and no other connection
    is checked out)."""
    return int(conn.execute(sa.select(event_counter.c.value)
                            .where(event_counter.c.id == 1)).scalar() or 0)


class _Watch:
    """The newest event id of one database, kept fresh while anyone waits."""

    def __init__(self, db: Database) -> None:
        self._db = weakref.ref(db)
        self._cond = threading.Condition()
        self._latest = -1
        self._waiters = 0
        self._last_waiter_left = time.monotonic()
        self._thread: threading.Thread | None = None

    def wait(self, after: int, timeout: float, stop: threading.Event | None) -> int:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiters += 1
            try:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name="bbweb-event-watch")
                    self._thread.start()
                while self._latest <= after and not (stop is not None and stop.is_set()):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                return self._latest
            finally:
                self._waiters -= 1
                if not self._waiters:
                    self._last_waiter_left = time.monotonic()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            db = self._db()
            if db is None:
                return
            wakeups = db.wakeups
            since = wakeups.generation(wakeup.EVENTS)  # before reading: nothing slips by
            try:
                latest = latest_event_id(db)
            except Exception:  # the database is away: waiters time out and retry
                latest = self._latest
            del db
            with self._cond:
                if latest != self._latest:
                    self._latest = latest
                    self._cond.notify_all()
                if (not self._waiters
                        and time.monotonic() - self._last_waiter_left > LINGER_SECONDS):
                    self._thread = None
                    self._latest = -1  # not watched any more: the next waiter reads afresh
                    return
                idle = not self._waiters
            # with nobody waiting, look again when the linger is over (to end the thread)
            wakeups.wait(wakeup.EVENTS, since,
                         LINGER_SECONDS if idle else wakeup.fallback(LOOK_SECONDS))


_watches: weakref.WeakKeyDictionary[Database, _Watch] = weakref.WeakKeyDictionary()
_watches_lock = threading.Lock()


def wait_for_events(db: Database, after: int, timeout: float,
                    stop: threading.Event | None = None) -> int:
    """Block until an event with an id above ``after`` is committed, ``timeout`` seconds
    pass or ``stop`` is set (and :func:`wake` called); return the newest event id known
    then (-1 if none was read yet)."""
    with _watches_lock:
        watch = _watches.get(db)
        if watch is None:
            watch = _watches[db] = _Watch(db)
    return watch.wait(after, timeout, stop)


def wake(db: Database) -> None:
    """Make every waiter of ``db`` look at its ``stop`` event now (a stream's client left)."""
    with _watches_lock:
        watch = _watches.get(db)
    if watch is not None:
        watch.wake()


__all__ = ["LINGER_SECONDS", "LOOK_SECONDS", "latest_event_id", "wait_for_events", "wake"]
