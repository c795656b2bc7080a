"""Ending a user's sessions on the server, although sessions are signed cookies.

A signed cookie cannot be deleted from a browser that kept a copy (a stolen cookie, a
shared computer): clearing it in the browser that logged out is not enough. So logging
out also records, in the status database, when that user's sessions ended; a session
made by an earlier login is refused from then on, in every gunicorn process and on every
host sharing the database. (All the user's sessions end, as "log out everywhere".)

One ``master_state`` row per user who ever logged out, named by a digest of the user
name (names may be longer than the key column); each check is one primary-key lookup.
"""

from __future__ import annotations

import hashlib
import time

import sqlalchemy as sa

from bbweb.db.connection import Database
from bbweb.db.schema import master_state

_PREFIX = "sessions-ended:"


def _key(user: str) -> str:
    return _PREFIX + hashlib.sha256(user.encode("utf-8", "surrogateescape")).hexdigest()


def end_sessions(db: Database, user: str, now: float | None = None) -> float:
    """Every session ``user`` logged in with before now is over; returns the time."""
    now = time.time() if now is None else now
    key = _key(user)
    for attempt in range(3):
        try:
            with db.write() as conn:
                conn.execute(master_state.delete().where(master_state.c.name == key))
                conn.execute(master_state.insert().values(name=key, value="{}",
                                                          set_by=user[:255], set_at=now))
            return now
        except sa.exc.IntegrityError:  # another process logged the same user out
            if attempt == 2:
                raise
    return now


def sessions_ended_at(db: Database, user: str) -> float | None:
    """When ``user``'s sessions were last ended (None: never)."""
    with db.read() as conn:
        return conn.execute(sa.select(master_state.c.set_at)
                            .where(master_state.c.name == _key(user))).scalar()


__all__ = ["end_sessions", "sessions_ended_at"]
