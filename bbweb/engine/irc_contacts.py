"""Writing the IRC bot's per-contact settings (``irc_contacts``): one row per notifier and
contact, replaced whole on every change."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import irc_contacts


def save_contact(conn: Connection, notifier: str, contact: str, events: Iterable[str],
                 muted: bool, by: str = "", now: float | None = None) -> None:
    """Store what ``contact`` (a lower-cased channel or nick) of ``notifier`` is told."""
    now = time.time() if now is None else now
    values = {"events": json.dumps(sorted(set(events))), "muted": bool(muted),
              "updated_at": now, "updated_by": by[:255]}
    updated = conn.execute(irc_contacts.update().where(
        irc_contacts.c.notifier == notifier, irc_contacts.c.contact == contact)
        .values(**values)).rowcount
    if not updated:
        conn.execute(irc_contacts.insert().values(notifier=notifier, contact=contact,
                                                  **values))


def forget_contact(conn: Connection, notifier: str, contact: str) -> None:
    conn.execute(sa.delete(irc_contacts).where(irc_contacts.c.notifier == notifier,
                                               irc_contacts.c.contact == contact))
