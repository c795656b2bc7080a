"""Webhook deliveries already processed, so that a redelivery is not stored twice.

Forges retry deliveries (GitHub's "Redeliver" button, Bitbucket retries after a timeout)
with the same delivery id. A dialect that reports the id (``delivery_id(request)``) gets
each (dialect, id) processed once: :func:`record_delivery` inserts the row in the same
transaction that stores the changes, and the unique constraint on (dialect, delivery_id)
makes a second, possibly concurrent, delivery fail with :class:`AlreadyProcessed` whatever
the timing (the insert skips a row the constraint refuses, so the claims of several
requests stored together are one statement, and a lost one undoes nothing else). Rows
older than :data:`RETENTION_SECONDS` are pruned on insert, so the table stays bounded
(forges stop redelivering long before that).
"""

from __future__ import annotations

import hashlib
import json
import time

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from bbweb.db.schema import hook_deliveries

RETENTION_SECONDS = 30 * 24 * 3600
MAX_ID_LENGTH = 255  # the column's size; longer ids are stored as a digest


# dialect name -> the claiming INSERT … ON CONFLICT DO NOTHING RETURNING (built once)
_CLAIMS: dict[str, sa.Insert] = {}
_SET_CHANGEIDS = (hook_deliveries.update().where(hook_deliveries.c.id == sa.bindparam("rowid"))
                  .values(changeids=sa.bindparam("changeids")))
_PRUNE = hook_deliveries.delete().where(hook_deliveries.c.received_at < sa.bindparam("before"))


class AlreadyProcessed(Exception):
    """This (dialect, delivery id) was stored before."""


def normalize_delivery_id(value: object) -> str | None:
    """The id to store: stripped text, a digest if too long; None for "no id"."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if len(text) > MAX_ID_LENGTH:
        return "sha256:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
    return text


def record_delivery(conn: Connection, dialect: str, delivery_id: str,
                    now: float | None = None, *, pruned: bool = False) -> int:
    """Claim (dialect, delivery_id) inside the caller's write transaction; returns the row
    id. Raises AlreadyProcessed when it was claimed before (or by a concurrent request that
    committed first). ``pruned``: the caller has called :func:`prune` in this transaction
    already (one transaction claiming several deliveries prunes once)."""
    now = time.time() if now is None else now
    if not pruned:
        prune(conn, now)
    (rowid,) = claim_deliveries(conn, [(dialect, delivery_id)], now)
    if rowid is None:
        raise AlreadyProcessed(f"{dialect} delivery {delivery_id}")
    return rowid


def claim_deliveries(conn: Connection, claims: list[tuple[str, str]],
                     now: float | None = None) -> list[int | None]:
    """Claim each (dialect, delivery id) of ``claims`` in the caller's write transaction,
    with one statement for all; returns each one's row id, or None for one claimed before
    (in an earlier transaction, by a concurrent one that committed first, or earlier in
    ``claims``). A claim that loses leaves the transaction usable: the insert skips the
    rows the unique constraint refuses instead of failing."""
    now = time.time() if now is None else now
    fresh = list(dict.fromkeys(claims))
    rows = conn.execute(_claim_statement(conn.dialect.name), [
        {"dialect": dialect, "delivery_id": delivery_id, "received_at": now,
         "changeids": "[]"} for dialect, delivery_id in fresh]).all()
    won = {(r.dialect, r.delivery_id): int(r.id) for r in rows}
    out: list[int | None] = []
    for claim in claims:
        out.append(won.pop(claim, None))  # a repeat in ``claims`` finds it taken
    return out


def set_changeids(conn: Connection, rowid: int, changeids: list[int]) -> None:
    conn.execute(_SET_CHANGEIDS, {"rowid": rowid, "changeids": json.dumps(changeids)})


def set_many_changeids(conn: Connection, stored: list[tuple[int, list[int]]]) -> None:
    """:func:`set_changeids` for several deliveries, in one statement."""
    if stored:
        conn.execute(_SET_CHANGEIDS, [{"rowid": rowid, "changeids": json.dumps(ids)}
                                      for rowid, ids in stored])


def _claim_statement(dialect_name: str) -> sa.Insert:
    found = _CLAIMS.get(dialect_name)
    if found is None:
        insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
        found = _CLAIMS[dialect_name] = insert(hook_deliveries).on_conflict_do_nothing(
        ).returning(hook_deliveries.c.id, hook_deliveries.c.dialect,
                    hook_deliveries.c.delivery_id)
    return found


def prune(conn: Connection, now: float | None = None,
          retention: float = RETENTION_SECONDS) -> int:
    """Forget deliveries older than ``retention`` seconds; returns how many."""
    now = time.time() if now is None else now
    return conn.execute(_PRUNE, {"before": now - retention}).rowcount


def find_delivery(conn: Connection, dialect: str, delivery_id: str) -> list[int] | None:
    """The change ids a processed delivery created, or None if it is unknown."""
    row = conn.execute(sa.select(hook_deliveries.c.changeids).where(
        hook_deliveries.c.dialect == dialect,
        hook_deliveries.c.delivery_id == delivery_id)).first()
    return None if row is None else json.loads(row.changeids)
