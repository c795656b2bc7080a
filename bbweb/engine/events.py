"""The event outbox: each state change writes its event in the same transaction.

Event ids are taken from a single counter row that the transaction updates, which holds a
row lock until commit on PostgreSQL (and SQLite serialises writers anyway). So ids become
visible in increasing order with no gaps left behind by slower transactions, and a consumer
that remembers "the last id I handled" can never skip an event.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db import wakeup
from bbweb.db.schema import consumer_cursors, event_counter, events


def emit(conn: Connection, kind: str, **payload: Any) -> int:
    """Record one event (``kind`` like ``"build.finished"``); returns its id. Whoever
    waits for events (:data:`bbweb.db.wakeup.EVENTS`) is woken once it is committed."""
    new_id = conn.execute(
        event_counter.update()
        .where(event_counter.c.id == 1)
        .values(value=event_counter.c.value + 1)
        .returning(event_counter.c.value)
    ).scalar_one()
    conn.execute(events.insert().values(id=new_id, kind=kind, created_at=time.time(),
                                        payload=json.dumps(payload, sort_keys=True)))
    wakeup.after_commit(conn, wakeup.EVENTS)
    return int(new_id)


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
