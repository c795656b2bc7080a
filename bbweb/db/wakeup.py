"""Wake-ups between the processes of one master: wait for work instead of polling for it.

A process that commits something another may act on (a build request, an event for the
daemon's consumers) names a *channel* in its write transaction (:func:`after_commit`);
once the transaction has committed, :class:`~bbweb.db.connection.Database` tells every
process waiting on that channel (:meth:`Wakeups.notify`). A waiting process notes the
channel's generation *before* it looks for work (:meth:`Wakeups.generation`), looks, and
then sleeps until the generation moves or its timeout runs out (:meth:`Wakeups.wait`): a
wake-up sent between its look and its sleep is never missed.

How it travels: every waiting process binds one UNIX datagram socket, named by its process
id, in a directory shared by the master's processes (next to an SQLite database file:
``state.sqlite-wake/``; for other databases, a directory of this user's in the temporary
directory, named by a hash of the database's address); a notification is one datagram
with the channel's name to each socket there, sent without blocking. One thread per
waiting process receives them; it costs nothing while nothing happens. A process that
died leaves a socket nobody reads: the first notification that finds it refused removes
it. On PostgreSQL the transaction also sends ``NOTIFY bbweb_wakeup`` with the channel's
name (delivered by the server when it commits, to every host), and each waiting process
keeps one connection listening for it (``LISTEN``) in a receiving thread.

A wake-up is a hint, never the only way to see work: every waiter keeps a fallback
timeout after which it looks again anyway, so a lost wake-up (an SQLite master's process
of another user, a full socket buffer, a PostgreSQL connection being re-opened) delays,
never strands. ``BBWEB_WAKEUP_FALLBACK``
(seconds) overrides every waiter's fallback, e.g. to show in a test that the wake-ups
alone do the work.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa

log = logging.getLogger("bbweb.wakeup")

# committed state that a claim, a consumer or a page stream may act on (every event of
# the outbox, a build request back in the queue)
EVENTS = "events"
PENDING = "bbweb_wakeups"  # the key in a connection's ``info`` of channels to notify
PG_CHANNEL = "bbweb_wakeup"  # PostgreSQL's NOTIFY channel; the payload names ours
PG_RETRY = 5.0  # seconds before a lost LISTEN connection is opened again
PG_READY = 10.0  # seconds a first waiter waits for its LISTEN to be in place
PG_CHECK = 60.0  # how often the LISTEN thread looks whether it is still wanted
FALLBACK_VAR = "BBWEB_WAKEUP_FALLBACK"
_MAX_UNIX_PATH = 107  # bytes a UNIX socket's path may have on Linux (sun_path less its NUL)
_MAX_NAME = 10  # a process id's digits (the socket's name in the directory)


def fallback(default: float) -> float:
    """The fallback timeout of a waiter whose own is ``default``: ``BBWEB_WAKEUP_FALLBACK``
    seconds when set (a positive number), else ``default``."""
    raw = os.environ.get(FALLBACK_VAR, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if value > 0 else default


def after_commit(conn: Any, *channels: str) -> None:
    """Notify ``channels`` once the write transaction of ``conn`` (a SQLAlchemy
    connection from :meth:`Database.write`) commits; nothing if it rolls back."""
    pending = conn.info.setdefault(PENDING, set())
    if conn.dialect.name == "postgresql":
        for channel in set(channels) - pending:  # delivered by the server at commit
            conn.execute(sa.text("SELECT pg_notify(:name, :channel)"),
                         {"name": PG_CHANNEL, "channel": channel})
    pending.update(channels)


def take_pending(conn: Any) -> set[str]:
    """The channels :func:`after_commit` registered on ``conn`` (cleared)."""
    return set(conn.info.pop(PENDING, None) or ())


class Wakeups:
    """This process's wake-ups for one master (one database); see the module's doc.

    ``directory`` None: wake-ups reach the threads of this process only. ``pg_url``: a
    PostgreSQL database whose notifications this process listens to as well."""

    def __init__(self, directory: Path | None, pg_url: str | None = None) -> None:
        self.directory = directory
        self.pg_url = pg_url
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._generations: dict[str, int] = {}
        self._listening: socket.socket | None = None
        self._sender: socket.socket | None = None
        self._usable = self.directory is not None
        self._pg_started = False
        self._pg_ready = threading.Event()
        self._pg_stop = threading.Event()
        self._users = 0

    def _forked(self) -> None:
        """In a child after ``fork``: nothing of the parent's sockets, thread or locks."""
        for sock in (self._listening, self._sender):
            if sock is not None:
                sock.close()
        self._reset()

    # -- waiting -------------------------------------------------------------------------

    def generation(self, channel: str) -> int:
        """The channel's generation now; from now on this process hears its wake-ups."""
        self._listen()
        with self._cond:
            return self._generations.get(channel, 0)

    def wait(self, channel: str, since: int, timeout: float) -> int:
        """Sleep until ``channel``'s generation is no longer ``since`` (a wake-up came) or
        ``timeout`` seconds passed; returns the generation."""
        self._listen()
        with self._cond:
            self._cond.wait_for(lambda: self._generations.get(channel, 0) != since,
                                max(timeout, 0.0))
            return self._generations.get(channel, 0)

    def wake_here(self, channel: str) -> None:
        """Wake this process's waiters on ``channel`` (and no other process's): e.g. to
        make a waiting thread see that it is asked to stop."""
        with self._cond:
            self._generations[channel] = self._generations.get(channel, 0) + 1
            self._cond.notify_all()

    # -- notifying -----------------------------------------------------------------------

    def notify(self, *channels: str) -> None:
        """Wake every process waiting on ``channels``, this one included. Never blocks
        and never fails: a wake-up that cannot be delivered is left to the fallback."""
        for channel in channels:
            self.wake_here(channel)
        if not self._usable or self.directory is None:
            return
        if os.getpid() != self._pid:
            self._forked()
        try:
            names = os.listdir(self.directory)
        except OSError:
            return  # nobody has waited yet
        own = str(self._pid)
        payload = "\n".join(channels).encode()
        for name in names:
            if name == own or not name.isdigit():
                continue
            path = self.directory / name
            try:
                self._send_socket().sendto(payload, str(path))
            except ConnectionRefusedError:  # its process is gone
                _unlink(path)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ENOENT):  # full: it wakes anyway
                    log.debug("wake-up to %s not sent: %s", path, exc)

    def _send_socket(self) -> socket.socket:
        if self._sender is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            self._sender = sock
        return self._sender

    # -- the receiving thread ------------------------------------------------------------

    def _listen(self) -> None:
        if os.getpid() != self._pid:
            self._forked()
        if self.pg_url is not None and not self._pg_ready.is_set():
            self._listen_pg()
        if self._listening is not None or not self._usable or self.directory is None:
            return
        with self._cond:
            if self._listening is not None:
                return
            try:
                _private_directory(self.directory)
                path = self.directory / str(self._pid)
                _unlink(path)  # a socket left by a dead process of the same id
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.bind(str(path))
            except OSError as exc:
                log.warning("wake-ups between processes are off (%s): waiting processes "
                            "look for work at their fallback interval", exc)
                self._usable = False
                return
            self._listening = sock
            threading.Thread(target=self._receive, args=(sock,), daemon=True,
                             name="bbweb-wakeup").start()

    def _listen_pg(self) -> None:
        with self._cond:
            if not self._pg_started:
                self._pg_started = True
                threading.Thread(target=self._receive_pg, args=(self._pg_ready, self._pid),
                                 daemon=True, name="bbweb-wakeup-pg").start()
        # from here on a notification is heard (or, if LISTEN failed, the fallback covers)
        self._pg_ready.wait(PG_READY)

    def _receive_pg(self, ready: threading.Event, pid: int) -> None:
        """LISTEN on a connection of its own; opened again after it is lost (waking every
        waiter then: a notification may have been missed meanwhile). Ends when the
        database no longer exists or this process's last Database on it is disposed."""
        import psycopg

        assert self.pg_url is not None
        conninfo = sa.engine.make_url(self.pg_url).set(drivername="postgresql") \
            .render_as_string(hide_password=False)
        failures = 0
        stop = self._pg_stop
        while os.getpid() == pid and not stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {PG_CHANNEL}")
                    ready.set()
                    if failures:
                        log.info("listening for wake-ups on PostgreSQL again")
                        with self._cond:
                            channels = list(self._generations)
                        for channel in channels:
                            self.wake_here(channel)
                    failures = 0
                    while not stop.is_set():
                        for note in conn.notifies(timeout=PG_CHECK):
                            if note.payload:
                                self.wake_here(note.payload)
            except Exception as exc:
                if "does not exist" in str(exc):
                    break  # dropped: nothing to wait for any more
                if not failures:
                    log.warning("listening for wake-ups on PostgreSQL failed (%s); waiting "
                                "processes look at their fallback interval until it is "
                                "back", exc)
                failures += 1
            ready.set()
            stop.wait(PG_RETRY)
        ready.set()

    def attach(self) -> None:
        """A :class:`~bbweb.db.connection.Database` of this process uses these wake-ups."""
        with self._cond:
            self._users += 1

    def detach(self) -> None:
        """That Database was disposed: the last one going stops listening on PostgreSQL
        (its connection is closed within ``PG_CHECK`` seconds)."""
        with self._cond:
            self._users = max(self._users - 1, 0)
            if self._users == 0 and self._pg_started:
                self._pg_stop.set()
                self._pg_stop = threading.Event()
                self._pg_ready = threading.Event()
                self._pg_started = False

    def _receive(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(4096)
            except OSError:
                return  # closed (after a fork, in the parent's copy) or gone
            for channel in data.decode(errors="replace").split("\n"):
                if channel:
                    self.wake_here(channel)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _private_directory(path: Path) -> None:
    """Make ``path`` (mode 0700), or check that the one there is ours and private."""
    try:
        path.mkdir(mode=0o700, parents=False)
    except FileExistsError:
        pass
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or \
            info.st_mode & 0o077:
        raise PermissionError(f"{path} is not a private directory of this user")


def directory_for(url: str) -> Path | None:
    """Where the processes of the master whose database is ``url`` meet: next to an
    SQLite file, else (or when that path is too long for a socket) in this user's
    temporary directory under a hash of the URL; None for an in-memory database."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        path = Path(database).resolve()
        beside = path.with_name(path.name + "-wake")
        if len(os.fsencode(str(beside))) + 1 + _MAX_NAME <= _MAX_UNIX_PATH:
            return beside
        key = str(path)
    else:
        key = parsed.render_as_string(hide_password=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    directory = Path(tempfile.gettempdir()) / f"bbweb-wake-{os.getuid()}" / digest
    if len(os.fsencode(str(directory))) + 1 + _MAX_NAME > _MAX_UNIX_PATH:
        directory = Path("/tmp") / f"bbweb-wake-{os.getuid()}" / digest
    return directory


_registry: dict[Path | None, Wakeups] = {}
_registry_lock = threading.Lock()


def for_url(url: str) -> Wakeups:
    """This process's :class:`Wakeups` for the database at ``url`` (one per database, so
    every :class:`~bbweb.db.connection.Database` on it in this process shares it)."""
    directory = directory_for(url)
    if directory is None:
        return Wakeups(None)  # in-memory: this Database alone
    pg_url = url if sa.engine.make_url(url).get_backend_name() == "postgresql" else None
    with _registry_lock:
        found = _registry.get(directory)
        if found is None:
            found = _registry[directory] = Wakeups(directory, pg_url)
        return found


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for wakeups in _registry.values():
        wakeups._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
