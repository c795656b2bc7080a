"""Writing the notifications table: one row per delivery attempt of a notifier.

A row is written as ``sending`` before the attempt and updated with its outcome after it,
so an attempt cut short by a crash stays visible (as ``sending``) on /notifications. Rows
older than :data:`RETENTION_SECONDS` are pruned by the daemon now and then.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from sqlalchemy.engine import Connection

from bbweb.db.schema import notifications

RETENTION_SECONDS = 90 * 24 * 3600
ANSWER_LIMIT = 2000  # characters of a server's answer or an error kept per attempt

OUTCOMES = ("sending", "sent", "failed", "rejected", "skipped", "error")


def start_attempt(conn: Connection, notifier: str, event_id: int, key: str, *, what: str,
                  recipients: Sequence[str], builder: str | None = None,
                  build_number: int | None = None, buildsetid: int | None = None,
                  outcome: str = "sending", answer: str = "",
                  now: float | None = None) -> int:
    """Record an attempt (``sending`` unless the outcome is already known); returns its id."""
    now = time.time() if now is None else now
    done = None if outcome == "sending" else now
    inserted = conn.execute(notifications.insert().values(
        notifier=notifier, event_id=event_id, message_key=key[:255], what=what,
        builder=builder, build_number=build_number, buildsetid=buildsetid,
        recipients=json.dumps(list(recipients)), attempted_at=now, finished_at=done,
        outcome=outcome, answer=_clip(answer))).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


def finish_attempt(conn: Connection, attempt_id: int, outcome: str, answer: str,
                   now: float | None = None) -> None:
    """Record how attempt ``attempt_id`` ended."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown notification outcome {outcome!r}")
    conn.execute(notifications.update().where(notifications.c.id == attempt_id).values(
        outcome=outcome, answer=_clip(answer),
        finished_at=time.time() if now is None else now))


def prune(conn: Connection, older_than: float | None = None) -> int:
    """Delete attempts made before ``older_than`` (default: the retention period ago)."""
    cutoff = time.time() - RETENTION_SECONDS if older_than is None else older_than
    return int(conn.execute(notifications.delete()
                            .where(notifications.c.attempted_at < cutoff)).rowcount or 0)


def _clip(text: str) -> str:
    text = str(text or "")
    return text if len(text) <= ANSWER_LIMIT else text[:ANSWER_LIMIT] + "…"
