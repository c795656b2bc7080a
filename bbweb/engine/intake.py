"""Group commit for change intake: the change-hook requests that arrive together in one
web process are stored in one write transaction.

Each accepted change costs a transaction of its own otherwise: ``BEGIN IMMEDIATE``, the
event counter row, the commit (SQLite's write of its journal, PostgreSQL's WAL flush) and
the wake-up to the other processes. While one request of a process holds the database's
write lock, the others of that process can only wait for it; so they hand their changes
to the request that is writing (the *leader*), which commits them all together.

What each request still gets, exactly as if it had been stored alone:

* its answer only once its changes are committed (the leader marks a request done after
  its transaction committed; nothing is answered from a transaction that may still roll
  back);
* its own changes in one transaction with their events and the schedulers' build
  requests, in the order the requests joined the group (the changes' ids, the outbox's
  events and the schedulers see them in that order);
* its own error: if the group's transaction fails for any reason (one request's change a
  scheduler refuses, a database error), it is rolled back and every request of the group
  is stored again in a transaction of its own, so a bad request gets its own error and
  the others are stored;
* a redelivered delivery id is answered "already processed" without disturbing the
  others (the group's claims are one insert that skips the ids claimed before).

No request waits for a group to fill up: a request that finds nobody writing writes at
once (alone, at concurrency 1); the group is whatever arrived while the previous leader
was writing, or while this one waited for the database's write lock (held by another
process, on SQLite): the group is taken from the queue once the lock is held.
``MAX_GROUP`` bounds how many changes one transaction takes, so a burst does not hold the
database's write lock much longer than a few single requests would.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field

from bbweb.db.connection import Database
from bbweb.engine import events
from bbweb.engine.changes import ChangeInput, add_changes
from bbweb.engine.hook_deliveries import (
    AlreadyProcessed,
    claim_deliveries,
    prune,
    set_many_changeids,
)
from bbweb.mastercfg.master import MasterConfig

# the most changes one group's transaction stores (a single request with more is stored
# alone, whatever its size)
MAX_GROUP = 64


@dataclass(eq=False)
class _Request:
    """One request's changes, and what became of them."""

    cfg: MasterConfig
    dialect: str
    changes: list[ChangeInput]
    delivery: str | None
    ids: list[int] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False
    # released once by the writer when this request is done or is to write next (None for
    # a request that wrote at once)
    wake: threading.Lock | None = None
    # set in the group's transaction, kept only if it commits
    _rowid: int | None = None


class ChangeIntake:
    """The change hooks' writer of one process and one database (see the module's doc)."""

    def __init__(self, db: Database, max_group: int = MAX_GROUP) -> None:
        self.db = db
        self.max_group = max_group
        self._lock = threading.Lock()
        self._queue: list[_Request] = []
        self._writing = False
        # how many transactions and requests, for the curious (tests, benches)
        self.transactions = 0
        self.grouped = 0

    @property
    def waiting(self) -> int:
        """Requests queued behind the one writing (not yet taken into a group)."""
        with self._lock:
            return len(self._queue)

    def store(self, cfg: MasterConfig, dialect: str, changes: list[ChangeInput],
              delivery: str | None) -> list[int]:
        """Store ``changes`` (and claim ``delivery``) once committed; returns their ids.
        Raises what storing them alone would: ``ChangeError`` (a ``ValueError``) for a
        change that cannot be stored, ``AlreadyProcessed`` for a delivery seen before,
        the database's error.

        A request that finds another writing sleeps on a lock of its own, which is
        released exactly once: when its group has committed (it returns), or when it is
        the oldest one left waiting as the writer finishes (it writes next, with the ones
        queued behind it). Nobody else is woken only to sleep again."""
        for change in changes:  # refused before it can disturb a group
            change.validate()
        req = _Request(cfg, dialect, changes, delivery)
        with self._lock:
            self._queue.append(req)
            leader = not self._writing
            self._writing = True
            if not leader:
                req.wake = threading.Lock()
                req.wake.acquire()
        if not leader:
            assert req.wake is not None
            req.wake.acquire()  # released by the writer: done, or our turn to write
        if not req.done:
            group: list[_Request] = []  # filled once the write lock is ours
            try:
                self._write(group)
            finally:
                with self._lock:
                    for other in group:
                        if other is not req and other.wake is not None:
                            other.wake.release()
                    if self._queue:
                        nxt = self._queue[0]
                        assert nxt.wake is not None
                        nxt.wake.release()  # the writing passes on; _writing stays set
                    else:
                        self._writing = False
        if req.error is not None:
            raise req.error
        return req.ids

    def _take_group(self) -> list[_Request]:
        """The oldest waiting requests that fit in one transaction (at least one)."""
        first = self._queue[0]
        group: list[_Request] = []
        size = 0
        for req in self._queue:
            if group and (req.cfg is not first.cfg or size + len(req.changes) > self.max_group):
                break
            group.append(req)
            size += len(req.changes)
        del self._queue[:len(group)]
        return group

    def _group(self, group: list[_Request]) -> None:
        """Fill the empty ``group`` with the oldest waiting requests (the leader's own is
        the oldest)."""
        if not group:
            with self._lock:
                group.extend(self._take_group())

    def _write(self, group: list[_Request]) -> None:
        """Store a group in one transaction; if that fails, each request alone. The group
        (``group``, empty on entry) is taken from the queue only once the transaction
        holds the database's write lock: the requests that arrived while this one waited
        for another writer (another process, on SQLite) are stored with it. Every
        request of the group is done when this returns (or raises: an interrupted
        leader's requests get its exception, since nobody else would store them)."""
        try:
            try:
                self._transaction(group)
            except Exception:
                self._group(group)  # (a failure before it was taken: they all get it)
                if len(group) == 1:
                    raise
                for req in group:
                    try:
                        self._transaction([req])
                    except Exception as alone:
                        req.error = alone
                        req.done = True
        except BaseException as exc:
            self._group(group)
            for req in group:
                if not req.done:
                    req.error = exc
                    req.done = True
            if not isinstance(exc, Exception):
                raise

    def _transaction(self, group: list[_Request]) -> None:
        """Store ``group`` in one transaction (an empty one: the oldest waiting requests,
        taken once the write lock is held)."""
        with self.db.write() as conn, events.batch(conn):
            self._group(group)
            for req in group:
                req.ids, req.error, req._rowid = [], None, None
            claiming = [req for req in group if req.delivery is not None]
            if claiming:
                prune(conn)
                rowids = claim_deliveries(conn, [(req.dialect, str(req.delivery))
                                                 for req in claiming])
                for req, rowid in zip(claiming, rowids, strict=True):
                    if rowid is None:
                        req.error = AlreadyProcessed(f"{req.dialect} delivery {req.delivery}")
                    req._rowid = rowid
            stored = [req for req in group if req.error is None]
            ids = add_changes(conn, group[0].cfg, [c for req in stored for c in req.changes],
                              validated=True)
            start = 0
            for req in stored:
                req.ids = ids[start:start + len(req.changes)]
                start += len(req.changes)
            set_many_changeids(conn, [(req._rowid, req.ids) for req in stored
                                      if req._rowid is not None and req.ids])
        # committed: now, and only now, the requests may be answered
        self.transactions += 1
        self.grouped += len(group)
        for req in group:
            req.done = True


_intakes: weakref.WeakKeyDictionary[Database, ChangeIntake] = weakref.WeakKeyDictionary()
_intakes_lock = threading.Lock()
_intakes_pid = os.getpid()


def intake_for(db: Database) -> ChangeIntake:
    """The process's :class:`ChangeIntake` for ``db`` (a forked child gets its own)."""
    global _intakes_pid
    with _intakes_lock:
        if os.getpid() != _intakes_pid:
            _intakes.clear()
            _intakes_pid = os.getpid()
        intake = _intakes.get(db)
        if intake is None:
            intake = _intakes[db] = ChangeIntake(db)
        return intake
