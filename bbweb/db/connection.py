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
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bbweb.db import schema

SQLITE_BUSY_TIMEOUT_MS = 30_000


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
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
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
        self.engine: Engine = sa.create_engine(url, **kwargs)
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot for one page)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; commits on success, rolls back on any exception."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(bbweb_write=True)
            with conn.begin():
                yield conn

    def create_all(self) -> None:
        """Create the schema directly (tests); real basedirs go through ``upgrade``."""
        schema.metadata.create_all(self.engine)
        with self.write() as conn:
            _ensure_counter(conn)

    def drop_all(self) -> None:
        schema.metadata.drop_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


def _ensure_counter(conn: Connection) -> None:
    row = conn.execute(sa.select(schema.event_counter.c.id)).first()
    if row is None:
        conn.execute(schema.event_counter.insert().values(id=1, value=0))
