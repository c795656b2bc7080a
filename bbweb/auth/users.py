"""The users store behind ``UsersAuth`` and ``bbweb user``: add, update, remove, check.

Passwords are stored with a modern passlib hash (bcrypt over SHA-256, so long passwords
are not cut at 72 bytes). Hashes in Buildbot 0.8's format (16 hex characters of salt and
the hex SHA-1 of password+salt) from a migrated database are still accepted and are
replaced by a modern hash at the user's next successful login.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from typing import Any

import sqlalchemy as sa

from bbweb.db.connection import Database, inserted_id
from bbweb.db.schema import users, users_info
from bbweb.status.users import UserRecord, find_user, get_user, password_hash


@functools.cache
def _passwords() -> Any:
    """The password hasher. passlib is imported when a password is first hashed or
    checked, not by every process that reads master.cfg (the daemon never does)."""
    from passlib.context import CryptContext

    return CryptContext(schemes=["bcrypt_sha256"], bcrypt_sha256__rounds=12)

_LEGACY = re.compile(r"^[0-9a-f]{16}[0-9a-f]{40}$")
RESERVED_ATTRS = ("uid", "identifier", "bb_username", "bb_password")


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so that a wrong user name
    takes as long as a wrong password. Made on first use: a bcrypt hash costs a quarter of
    a second, which importing this module (every master.cfg load) should not pay."""
    return str(_passwords().hash("not a password anyone has"))


class UserError(ValueError):
    """A users-store operation that cannot be done (the message says why)."""


def hash_password(password: str) -> str:
    """The stored form of a new password."""
    if not password:
        raise UserError("a password cannot be empty")
    return _passwords().hash(password)


def _legacy_ok(password: str, stored: str) -> bool:
    salt, digest = stored[:16], stored[16:]
    mine = hashlib.sha1((password + salt).encode("utf-8")).hexdigest()
    return hmac.compare_digest(mine, digest)


def check_password(db: Database, bb_username: str, password: str) -> bool:
    """Whether ``bb_username`` logs in with ``password``."""
    with db.read() as conn:
        stored = password_hash(conn, bb_username)
    if not stored:
        _passwords().verify(password, _dummy_hash())  # as slow as a wrong password
        return False
    if _LEGACY.match(stored):
        if not _legacy_ok(password, stored):
            return False
        with db.write() as conn:  # upgrade the 0.8 hash
            conn.execute(users.update().where(users.c.bb_username == bb_username)
                         .values(bb_password=hash_password(password)))
        return True
    try:
        return bool(_passwords().verify(password, stored))
    except (ValueError, TypeError):
        return False


def user_by_username(db: Database, bb_username: str) -> UserRecord | None:
    with db.read() as conn:
        row = conn.execute(sa.select(users.c.uid).where(
            users.c.bb_username == bb_username)).scalar()
        if row is None:
            return None
        return get_user(conn, row)


def _check_attrs(attrs: dict[str, str]) -> None:
    for key in attrs:
        if not key or key in RESERVED_ATTRS or len(key) > 128:
            raise UserError(f"{key!r} cannot be an attribute name")


def add_user(db: Database, identifier: str, bb_username: str | None = None,
             password: str | None = None, attrs: dict[str, str] | None = None) -> int:
    """Create a user and return its uid."""
    if not identifier:
        raise UserError("a user needs an identifier")
    attrs = dict(attrs or {})
    _check_attrs(attrs)
    if password and not bb_username:
        bb_username = identifier
    with db.write() as conn:
        if conn.execute(sa.select(users.c.uid).where(
                users.c.identifier == identifier)).first():
            raise UserError(f"a user with identifier {identifier!r} already exists")
        if bb_username and conn.execute(sa.select(users.c.uid).where(
                users.c.bb_username == bb_username)).first():
            raise UserError(f"the login name {bb_username!r} is already taken")
        uid = inserted_id(conn.execute(users.insert().values(
            identifier=identifier, bb_username=bb_username,
            bb_password=hash_password(password) if password else None)
        ))
        for key, value in attrs.items():
            conn.execute(users_info.insert().values(uid=uid, attr_type=key,
                                                    attr_data=value))
    return int(uid)


def update_user(db: Database, key: str, bb_username: str | None = None,
                password: str | None = None, attrs: dict[str, str] | None = None,
                identifier: str | None = None) -> int:
    """Change a user found by identifier or login name; an attribute given as ``''`` is
    removed. Returns the uid."""
    attrs = dict(attrs or {})
    _check_attrs(attrs)
    with db.write() as conn:
        found = find_user(conn, key)
        if found is None:
            raise UserError(f"no user {key!r}")
        values: dict[str, Any] = {}
        if identifier:
            values["identifier"] = identifier
        if bb_username:
            values["bb_username"] = bb_username
        if password:
            values["bb_password"] = hash_password(password)
            if not (bb_username or found.bb_username):
                values["bb_username"] = found.identifier
        if values:
            try:
                conn.execute(users.update().where(users.c.uid == found.uid).values(**values))
            except sa.exc.IntegrityError as exc:
                raise UserError("that identifier or login name is already taken") from exc
        for attr, value in attrs.items():
            conn.execute(users_info.delete().where(users_info.c.uid == found.uid)
                         .where(users_info.c.attr_type == attr))
            if value:
                conn.execute(users_info.insert().values(uid=found.uid, attr_type=attr,
                                                        attr_data=value))
    return found.uid


def remove_user(db: Database, key: str) -> int:
    """Delete a user found by identifier or login name; returns its uid."""
    with db.write() as conn:
        found = find_user(conn, key)
        if found is None:
            raise UserError(f"no user {key!r}")
        conn.execute(users_info.delete().where(users_info.c.uid == found.uid))
        conn.execute(users.delete().where(users.c.uid == found.uid))
    return found.uid
