"""Read queries for the users tables (the users pages and ``UsersAuth``).

Each function reads one page of users or one user: bounded by what the caller shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import users, users_info


@dataclass
class UserRecord:
    """One user: ``attributes`` are ``users_info`` rows plus ``bb_username`` (never the
    password hash)."""

    uid: int
    identifier: str
    bb_username: str | None
    attributes: dict[str, str] = field(default_factory=dict)


def list_users(conn: Connection, after: int = 0, limit: int = 200
               ) -> tuple[list[tuple[int, str]], bool]:
    """``(uid, identifier)`` of up to ``limit`` users with uid > ``after``, in uid order,
    and whether more follow."""
    rows = conn.execute(sa.select(users.c.uid, users.c.identifier)
                        .where(users.c.uid > after)
                        .order_by(users.c.uid).limit(limit + 1)).all()
    return [(r.uid, r.identifier) for r in rows[:limit]], len(rows) > limit


def _record(conn: Connection, row: sa.Row[int, str, str | None]) -> UserRecord:
    attrs = {r.attr_type: r.attr_data for r in conn.execute(
        sa.select(users_info.c.attr_type, users_info.c.attr_data)
        .where(users_info.c.uid == row.uid).order_by(users_info.c.attr_type))}
    return UserRecord(row.uid, row.identifier, row.bb_username, attrs)


def get_user(conn: Connection, uid: int) -> UserRecord | None:
    """The user with this uid, or None."""
    row = conn.execute(sa.select(users.c.uid, users.c.identifier, users.c.bb_username)
                       .where(users.c.uid == uid)).first()
    return _record(conn, row) if row is not None else None


def find_user(conn: Connection, key: str) -> UserRecord | None:
    """The user whose identifier, or else whose ``bb_username``, is ``key``."""
    cols = (users.c.uid, users.c.identifier, users.c.bb_username)
    row = conn.execute(sa.select(*cols).where(users.c.identifier == key)).first()
    if row is None:
        row = conn.execute(sa.select(*cols).where(users.c.bb_username == key)).first()
    return _record(conn, row) if row is not None else None


def password_hash(conn: Connection, bb_username: str) -> str | None:
    """The stored ``bb_password`` of the user who logs in as ``bb_username``."""
    return conn.execute(sa.select(users.c.bb_password)
                        .where(users.c.bb_username == bb_username)).scalar()
