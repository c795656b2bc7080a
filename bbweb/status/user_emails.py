"""Stored email addresses of users (the ``email`` attribute in ``users_info``), for a
MailNotifier without ``lookup``.

As with Buildbot 0.8's User Objects, a change's author is linked to a user by one of the
user's attributes (e.g. ``git='Bob <bob@example.org>'``, set with ``bbweb user add
--attr``), and a build's ``owners`` by user name (``bb_username``) or identifier.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import users, users_info

EMAIL_ATTR = "email"


def _emails_of(conn: Connection, uids: set[int]) -> dict[int, str]:
    if not uids:
        return {}
    return {uid: data for uid, data in conn.execute(
        sa.select(users_info.c.uid, users_info.c.attr_data)
        .where(users_info.c.uid.in_(sorted(uids)), users_info.c.attr_type == EMAIL_ATTR))}


def emails_for_authors(conn: Connection, authors: Iterable[str]) -> list[str]:
    """The stored email of each user one of whose attributes is an author string
    (authors nobody is linked to, or whose user has no email, give nothing)."""
    wanted = sorted({a for a in authors if a})
    if not wanted:
        return []
    uids = {uid for (uid,) in conn.execute(
        sa.select(users_info.c.uid).where(users_info.c.attr_type != EMAIL_ATTR,
                                          users_info.c.attr_data.in_(wanted)))}
    return sorted(set(_emails_of(conn, uids).values()))


def emails_for_usernames(conn: Connection, names: Iterable[str]) -> list[str]:
    """The stored email of each user whose ``bb_username`` or identifier is one of
    ``names``."""
    wanted = sorted({n for n in names if n})
    if not wanted:
        return []
    uids = {uid for (uid,) in conn.execute(
        sa.select(users.c.uid).where(sa.or_(users.c.bb_username.in_(wanted),
                                            users.c.identifier.in_(wanted))))}
    return sorted(set(_emails_of(conn, uids).values()))
