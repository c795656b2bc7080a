"""Read queries for the notifications table (the /notifications page and its JSON).

Each query reads a bounded number of rows, newest first, through the
``(notifier, id)`` index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import notifications

FAILED_OUTCOMES = ("failed", "rejected", "error", "sending")
# outcomes after which a notification is not attempted again
SETTLED_OUTCOMES = ("sent", "skipped", "rejected")


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery attempt of a notifier."""

    id: int
    notifier: str
    event_id: int
    message_key: str
    what: str
    builder: str | None
    build_number: int | None
    buildsetid: int | None
    recipients: tuple[str, ...]
    attempted_at: float
    finished_at: float | None
    outcome: str
    answer: str

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "notifier": self.notifier, "event": self.event_id,
                "message_id": self.message_key, "what": self.what,
                "builder": self.builder, "build_number": self.build_number,
                "buildset": self.buildsetid, "recipients": list(self.recipients),
                "attempted_at": self.attempted_at, "finished_at": self.finished_at,
                "outcome": self.outcome, "answer": self.answer}


def _record(row: sa.Row[Any]) -> DeliveryRecord:
    try:
        recipients = tuple(str(r) for r in json.loads(row.recipients or "[]"))
    except ValueError:
        recipients = ()
    return DeliveryRecord(row.id, row.notifier, int(row.event_id), row.message_key, row.what,
                          row.builder, row.build_number, row.buildsetid, recipients,
                          row.attempted_at, row.finished_at, row.outcome, row.answer)


def notifier_names(conn: Connection) -> list[str]:
    """Every notifier that has recorded an attempt (sorted)."""
    return sorted(n for (n,) in conn.execute(sa.select(notifications.c.notifier).distinct()))


def recent_deliveries(conn: Connection, notifier: str, limit: int = 50,
                      failures_only: bool = False) -> list[DeliveryRecord]:
    """The newest ``limit`` attempts of ``notifier`` (only the unsuccessful ones with
    ``failures_only``: failed, rejected, error, or still marked as sending)."""
    query = sa.select(notifications).where(notifications.c.notifier == notifier)
    if failures_only:
        query = query.where(notifications.c.outcome.in_(FAILED_OUTCOMES))
    rows = conn.execute(query.order_by(notifications.c.id.desc()).limit(limit)).all()
    return [_record(r) for r in rows]


def delivery_settled(conn: Connection, notifier: str, event_id: int, key: str) -> bool:
    """Whether ``notifier`` already sent (or skipped, or had refused for good) the
    notification ``key`` of event ``event_id``."""
    return conn.execute(sa.select(notifications.c.id).where(
        notifications.c.notifier == notifier, notifications.c.event_id == event_id,
        notifications.c.message_key == key[:255],
        notifications.c.outcome.in_(SETTLED_OUTCOMES)).limit(1)).first() is not None
