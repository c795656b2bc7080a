"""The event outbox: each state change writes its event in the same transaction.

Event ids are taken from a single counter row that the transaction updates, which holds a
row lock until commit on PostgreSQL (and SQLite serialises writers anyway). So ids become
visible in increasing order with no gaps left behind by slower transactions, and a consumer
that remembers "the last id I handled" can never skip an event.

A transaction that emits many events (a push of many commits, each with its change, build
request and buildset) may collect them with :func:`batch`: they are written when the batch
ends, still inside the transaction, with one counter update for the whole block of ids and
one multi-row insert, in the order they were emitted.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db import wakeup
from bbweb.db.schema import consumer_cursors, event_counter, events

# Statements built once: building a statement (``insert().values(...)``) costs SQLAlchemy
# far more than executing a prepared one with parameters, and the outbox is on every path.
_RESERVE = (event_counter.update()
            .where(event_counter.c.id == 1)
            .values(value=event_counter.c.value + sa.bindparam("count", type_=sa.BigInteger))
            .returning(event_counter.c.value))
_INSERT = events.insert()
# where a batch's queue lives while it is open (the connection's ``info``)
_QUEUE = "bbweb.events.batch"


def emit(conn: Connection, kind: str, **payload: Any) -> int | None:
    """Record one event (``kind`` like ``"build.finished"``); returns its id, or None inside
    :func:`batch`, where ids are given when the batch ends. Whoever waits for events
    (:data:`bbweb.db.wakeup.EVENTS`) is woken once it is committed."""
    queue = conn.info.get(_QUEUE)
    if queue is not None:
        queue.append((kind, payload))
        return None
    return _write(conn, [(kind, payload)])


def emit_now(conn: Connection, kind: str, **payload: Any) -> int:
    """Record one event now and return its id, also inside a :func:`batch` (whose events
    so far are written first, so the order stays the order of emission)."""
    queue = conn.info.get(_QUEUE)
    if queue:
        _write(conn, queue)
        queue.clear()
    return _write(conn, [(kind, payload)])


@contextlib.contextmanager
def batch(conn: Connection) -> Iterator[None]:
    """Queue the events emitted inside and write them together when the block ends
    normally (in the caller's transaction; if the block raises, nothing is written and the
    transaction is expected to roll back). Nested batches join the outermost one."""
    if conn.info.get(_QUEUE) is not None:
        yield
        return
    queue: list[tuple[str, dict[str, Any]]] = []
    conn.info[_QUEUE] = queue
    try:
        yield
    finally:
        conn.info.pop(_QUEUE, None)
    if queue:
        _write(conn, queue)


def _write(conn: Connection, items: list[tuple[str, dict[str, Any]]]) -> int:
    """Reserve ids for ``items`` with one counter update and insert them; returns the last
    id."""
    last = int(conn.execute(_RESERVE, {"count": len(items)}).scalar_one())
    now = time.time()
    first = last - len(items) + 1
    rows = [{"id": first + i, "kind": kind, "created_at": now,
             "payload": json.dumps(payload, sort_keys=True)}
            for i, (kind, payload) in enumerate(items)]
    conn.execute(_INSERT, rows[0] if len(rows) == 1 else rows)
    wakeup.after_commit(conn, wakeup.EVENTS)
    return last


def read_events(conn: Connection, after: int, limit: int = 500) -> list[dict[str, Any]]:
    """Events with id > ``after``, oldest first."""
    rows = conn.execute(
        sa.select(events).where(events.c.id > after).order_by(events.c.id).limit(limit)
    ).all()
    return [{"id": r.id, "kind": r.kind, "created_at": r.created_at,
             "payload": json.loads(r.payload)} for r in rows]


def get_cursor(conn: Connection, consumer: str) -> int:
    """Where ``consumer`` left off (0 for a new consumer: it sees all history)."""
    value = conn.execute(sa.select(consumer_cursors.c.last_event_id)
                         .where(consumer_cursors.c.consumer == consumer)).scalar()
    return int(value or 0)


def set_cursor(conn: Connection, consumer: str, last_event_id: int) -> None:
    """Advance ``consumer``'s cursor; call in the transaction that records its work."""
    updated = conn.execute(
        consumer_cursors.update().where(consumer_cursors.c.consumer == consumer)
        .values(last_event_id=last_event_id, updated_at=time.time())
    ).rowcount
    if not updated:
        conn.execute(consumer_cursors.insert().values(consumer=consumer,
                                                      last_event_id=last_event_id,
                                                      updated_at=time.time()))


def latest_event_id(conn: Connection) -> int:
    return int(conn.execute(sa.select(event_counter.c.value)
                            .where(event_counter.c.id == 1)).scalar() or 0)
