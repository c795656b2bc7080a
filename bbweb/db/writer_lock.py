"""The queue SQLite writers wait in, within a process and between the master's processes.

SQLite lets one writer in at a time. A writer that finds the database locked waits in
SQLite's busy handler, which sleeps 1, 2, 5, 10, 15 … ms between looks however soon the
lock is free, and does not queue: a process whose writes follow each other closely (a web
process storing a burst of changes) takes the lock again before a sleeping writer of
another process looks, so that one waits several of its sleeps. Waiting here instead, the
next writer runs the moment the previous one has finished:

* the threads of one process queue on a lock of the process (re-entrant: a thread already
  writing is not held back, and meets SQLite's own lock as before);
* the processes queue on an exclusive ``flock`` of a file beside the database
  (``state.sqlite-lock``, like SQLite's own ``-wal`` and ``-shm``), which the kernel
  hands to the next waiter when it is released, and releases itself when its holder dies.

Holding it is a promise to write and finish soon: it is taken just before ``BEGIN
IMMEDIATE`` and released after the commit or rollback. SQLite's own lock and busy timeout
still apply underneath, so a writer that does not take this queue (an older bbweb, the
``sqlite3`` shell) is waited for as before. A database whose directory does not let the
lock file be made (read-only media) is written without the file lock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("bbweb.db")


class WriterLock:
    """One database file's writer queue in this process (see the module's doc)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._depth = 0  # this process's nesting of acquire() (under _thread_lock)
        self._fd: int | None = None
        self._fd_pid: int | None = None
        self._usable = path is not None
        self._users = 0  # Database objects of this process using it (under _registry_lock)

    def acquire(self, timeout: float) -> bool:
        """Wait for this process's turn (at most ``timeout`` seconds), then for the other
        processes'; returns whether the process's lock was taken (if not, the caller
        writes anyway and SQLite's busy timeout decides)."""
        if not self._thread_lock.acquire(timeout=timeout):
            return False
        self._depth += 1
        if self._depth == 1:
            fd = self._process_fd()
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except OSError as exc:  # e.g. a file system without locks
                    self._give_up(exc)
        return True

    def release(self) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None and self._fd_pid == os.getpid():
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                except OSError as exc:
                    self._give_up(exc)
        finally:
            self._thread_lock.release()

    def _process_fd(self) -> int | None:
        """This process's own descriptor of the lock file: an ``flock`` belongs to the open
        file, which a forked child shares with its parent, so a child opens its own."""
        if not self._usable or self.path is None:
            return None
        pid = os.getpid()
        if self._fd is not None and self._fd_pid == pid:
            return self._fd
        if self._fd is not None:
            try:
                os.close(self._fd)  # the parent's copy: its lock stays the parent's
            except OSError:
                pass
            self._fd = None
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            self._give_up(exc)
            return None
        self._fd_pid = pid
        return self._fd

    def _give_up(self, exc: OSError) -> None:
        log.warning("writers of %s queue in SQLite's busy handler only (%s)", self.path, exc)
        self._usable = False


def lock_path(database: str) -> Path | None:
    """The lock file of an SQLite database file (None for an in-memory or URI one)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).resolve()
    return path.with_name(path.name + "-lock")


_registry: dict[Path | None, WriterLock] = {}
_registry_lock = threading.Lock()


def for_database(database: str) -> WriterLock:
    """This process's queue for the SQLite database file ``database``, shared by every
    :class:`~bbweb.db.connection.Database` on it (so that two of them in one process queue
    on one lock, not on two that exclude each other). Give it back with :func:`detach`
    when the database is disposed of."""
    path = lock_path(database)
    if path is None:
        return WriterLock(None)
    with _registry_lock:
        found = _registry.get(path)
        if found is None:
            found = _registry[path] = WriterLock(path)
        found._users += 1
        return found


def detach(lock: WriterLock) -> None:
    """One user fewer; the last one closes the lock file (a process that opens many
    databases one after the other, like a test run, does not keep a descriptor for each)."""
    with _registry_lock:
        lock._users -= 1
        if lock._users > 0 or _registry.get(lock.path) is not lock:
            return
        del _registry[lock.path]
        if lock._fd is not None and lock._fd_pid == os.getpid() and lock._depth == 0:
            try:
                os.close(lock._fd)
            except OSError:
                pass
            lock._fd = None


def _after_fork_in_child() -> None:
    # a lock held by another thread of the parent at the fork is held by no thread here
    global _registry_lock
    _registry_lock = threading.Lock()
    for lock in _registry.values():
        lock._thread_lock = threading.RLock()
        lock._depth = 0


os.register_at_fork(after_in_child=_after_fork_in_child)
