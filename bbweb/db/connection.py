"""Opening the status database and running transactions on it.

Two kinds of transaction exist on purpose. ``read()`` is a plain deferred transaction.
``write()`` on SQLite issues ``BEGIN IMMEDIATE`` so the write lock is taken up front and the
busy timeout applies; a deferred transaction that reads first and writes later would fail
with SQLITE_BUSY instead of waiting when another process (web, daemon) committed in between.
On PostgreSQL both are ordinary READ COMMITTED transactions.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from bbweb.db import schema, wakeup, writer_lock

SQLITE_BUSY_TIMEOUT_MS = 30_000
# seconds ``check_connection`` waits for a server that does not answer (unless the URL
# says otherwise with ``?connect_timeout=N``)
CONNECT_TIMEOUT = 10


def default_db_url(basedir: str | os.PathLike[str]) -> str:
    """The embedded default: an SQLite file inside the basedir."""
    return "sqlite:///" + str(Path(basedir).resolve() / "state.sqlite")


def normalize_db_url(url: str, basedir: str | os.PathLike[str] | None = None) -> str:
    """Accept Buildbot-style URLs too: relative SQLite paths are relative to the basedir,
    and ``postgresql://`` means the psycopg 3 driver we ship with."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and basedir:
        rel = url[len("sqlite:///"):]
        if rel and rel != ":memory:":
            return "sqlite:///" + str(Path(basedir).resolve() / rel)
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _install_sqlite_hooks(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" hook emit BEGIN itself (pysqlite's own handling
        # would defer it and defeat BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA synchronous = NORMAL")
        try:
            cur.execute("PRAGMA journal_mode = WAL")
        except Exception:  # e.g. read-only media; still usable, just less concurrent
            pass
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("bbweb_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Database:
    """A handle on the status database shared by web, daemon and tests.

    Create one per process (engines hold connection pools, which must not cross a fork).
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict = {"echo": echo, "future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                      "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = sa.create_engine(url, **kwargs)
        except ImportError as exc:  # the URL's driver is not installed
            raise DatabaseUnreachable(url, _missing_driver(url, exc)) from None
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine)
        self.wakeups = wakeup.for_url(url)
        self.wakeups.attach()
        self._disposed = False
        # SQLite's writers queue here, the threads of this process and the processes
        # (re-entrant: a thread inside a write transaction may open another one)
        self._write_lock = (writer_lock.for_database(sa.engine.make_url(url).database or "")
                            if self.is_sqlite else None)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot for one page)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; commits on success, rolls back on any exception.

        On SQLite the writers take turns (:mod:`bbweb.db.writer_lock`) before ``BEGIN
        IMMEDIATE``: the threads of this process through a lock of the process, the
        processes through a file lock beside the database. SQLite lets one writer in at a
        time anyway, and a writer that finds the database locked sleeps in SQLite's busy
        handler (1, 2, 5, 10 … ms) however soon the lock is free, while a writer waiting in
        the queue runs the moment the previous one commits. (A thread already in a write
        transaction is not held back: it meets SQLite's own lock and its timeout, as
        before.)"""
        lock = self._write_lock
        held = lock is not None and lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            committed = False
            with self.engine.connect() as conn:
                conn = conn.execution_options(bbweb_write=True)
                wakeup.take_pending(conn)  # nothing left over from the connection's last use
                try:
                    with conn.begin():
                        yield conn
                    committed = True
                finally:
                    channels = wakeup.take_pending(conn)
        finally:
            if held:
                assert lock is not None
                lock.release()
        # Once it has committed, the processes waiting on the channels it named
        # (bbweb.db.wakeup.after_commit) are woken.
        if committed and channels:
            self.wakeups.notify(*channels)

    def create_all(self) -> None:
        """Create the schema directly (tests); real basedirs go through ``upgrade``."""
        schema.metadata.create_all(self.engine)
        with self.write() as conn:
            _ensure_counter(conn)

    def drop_all(self) -> None:
        schema.metadata.drop_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
        if not self._disposed:
            self._disposed = True
            self.wakeups.detach()
            if self._write_lock is not None:
                writer_lock.detach(self._write_lock)


def _ensure_counter(conn: Connection) -> None:
    row = conn.execute(sa.select(schema.event_counter.c.id)).first()
    if row is None:
        conn.execute(schema.event_counter.insert().values(id=1, value=0))


class DatabaseUnreachable(Exception):
    """The status database cannot be connected to. ``str()`` is one line for the user:
    the URL (password hidden) and the reason."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot connect to the database {display_url(self.url)}: {self.reason}"


def display_url(url: str) -> str:
    """``url`` fit to print: the password replaced by ``***``, and ``postgresql://`` as
    master.cfg says it rather than the driver-qualified form it is normalized to."""
    if url.startswith("postgresql+psycopg://"):
        url = "postgresql://" + url.split("://", 1)[1]
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    creds, host = authority.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}{slash}{path}"


# (pattern in the driver's message, the reason told to the user), first match wins
_REASONS = (
    (re.compile(r"connection refused", re.I), "connection refused (is the server running "
                                              "and listening on that host and port?)"),
    (re.compile(r"timeout expired|timed out", re.I), "timeout (the server did not answer)"),
    (re.compile(r"password authentication failed|authentication failed|no password "
                r"supplied|no pg_hba\.conf entry", re.I), "authentication failed"),
    (re.compile(r'database "[^"]*" does not exist', re.I), "database does not exist"),
    (re.compile(r"failed to resolve host|could not translate host name|name or service "
                r"not known", re.I), "the host name cannot be resolved"),
    (re.compile(r"unable to open database file", re.I),
     "the database file cannot be opened or created (does its directory exist, and may "
     "this user write there?)"),
)


def connect_failure_reason(exc: BaseException) -> str:
    """Why connecting failed, in a few words: refused, timeout, authentication, missing
    database, unknown host; otherwise the driver's own last line (without its
    ``connection to server at ... failed:`` preamble)."""
    orig = getattr(exc, "orig", None) or exc
    message = str(orig)
    for pattern, reason in _REASONS:
        if pattern.search(message):
            return reason
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    last = lines[-1] if lines else type(orig).__name__
    last = re.sub(r"^.*? failed: ", "", last)
    return re.sub(r"^(FATAL|ERROR):\s*", "", last) or type(orig).__name__


def _missing_driver(url: str, exc: ImportError) -> str:
    """The reason for a URL whose database driver cannot be imported. Plain ``bbweb`` runs
    on SQLite; PostgreSQL's driver comes with the ``postgresql`` extra."""
    try:
        backend = sa.engine.make_url(url).get_backend_name()
    except sa.exc.ArgumentError:
        backend = ""
    if backend == "postgresql":
        return "psycopg is not installed: install bbweb[postgresql] (psycopg) for PostgreSQL"
    return f"its database driver is not installed ({exc})"


def check_driver(url: str) -> None:
    """Raise :class:`DatabaseUnreachable` when ``url``'s database driver cannot be
    imported (for what reads master.cfg without connecting, like ``gunicorn.conf.py``)."""
    try:
        sa.create_engine(url, poolclass=NullPool).dispose()
    except ImportError as exc:
        raise DatabaseUnreachable(url, _missing_driver(url, exc)) from None
    except sa.exc.ArgumentError:
        pass  # told by check_connection, which knows what else is wrong with it


def check_connection(url: str, *, create: bool = True,
                     timeout: float = CONNECT_TIMEOUT) -> None:
    """Connect to ``url`` once and disconnect; raises :class:`DatabaseUnreachable` with
    the reason when that fails, instead of the driver's traceback.

    The commands that start or upgrade a master call this first, so an unreachable
    server, a wrong password or a missing database is told in one line. A server that
    does not answer at all is given up after ``timeout`` seconds. With ``create=False``
    an SQLite file that does not exist yet is reported rather than created (SQLite would
    create an empty one on connecting)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise DatabaseUnreachable(url, "not a database URL") from None
    connect_args: dict = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not create and database not in ("", ":memory:") and not Path(database).exists():
            raise DatabaseUnreachable(url, "the database file does not exist ('bbweb "
                                           "upgrade-master' creates it)")
    elif parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = max(1, round(timeout))
    try:
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except ImportError as exc:
        raise DatabaseUnreachable(url, _missing_driver(url, exc)) from None
    except sa.exc.ArgumentError as exc:
        raise DatabaseUnreachable(url, f"cannot use this kind of URL: {exc}") from None
    try:
        with engine.connect():
            pass
    except sa.exc.DBAPIError as exc:
        raise DatabaseUnreachable(url, connect_failure_reason(exc)) from None
    finally:
        engine.dispose()


def inserted_id(result: sa.CursorResult[Any]) -> int:
    """The primary key of the row a single-row INSERT made."""
    key = result.inserted_primary_key
    if key is None:  # SQLAlchemy gives none for anything but a single-row INSERT
        raise ValueError("the statement was not a single-row INSERT")
    return int(key[0])


def insert_ids(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` into ``table`` (whose primary key is one integer column) with as few
    statements as the database allows; returns their keys in the order of ``rows``.

    SQLAlchemy can only match the keys of a multi-row ``INSERT … RETURNING`` to its rows on
    SQLite one row per statement. SQLite gives each new row of a table the next key above
    the largest one (the rows of one ``INSERT`` in the order of its ``VALUES``, none of
    another writer's in between, since one writer holds the database at a time), so there
    the keys returned, in increasing order, are the rows' keys in order; one statement
    stores them all."""
    if not rows:
        return []
    plain, returning, ordered = _insert_statements(table)
    if len(rows) == 1:
        return [inserted_id(conn.execute(plain, rows[0]))]
    if conn.dialect.name == "sqlite":
        ids = sorted(int(i) for i in conn.execute(returning, rows).scalars())
    else:
        ids = [int(i) for i in conn.execute(ordered, rows).scalars()]
    if len(ids) != len(rows):
        raise RuntimeError(f"{table.name}: {len(rows)} rows inserted, {len(ids)} keys returned")
    return ids


# table -> its three INSERTs of insert_ids (built once: building one costs more than running it)
_INSERTS: dict[sa.Table, tuple[sa.Insert, sa.Insert, sa.Insert]] = {}


def _insert_statements(table: sa.Table) -> tuple[sa.Insert, sa.Insert, sa.Insert]:
    found = _INSERTS.get(table)
    if found is None:
        (key,) = table.primary_key.columns
        found = _INSERTS[table] = (table.insert(), table.insert().returning(key),
                                   table.insert().returning(key, sort_by_parameter_order=True))
    return found
