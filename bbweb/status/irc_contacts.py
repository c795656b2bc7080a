"""Reading the IRC bot's per-contact settings (written by
:mod:`bbweb.engine.irc_contacts`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import irc_contacts


@dataclass(frozen=True)
class SavedContact:
    contact: str
    events: frozenset[str]
    muted: bool
    updated_at: float
    updated_by: str


def saved_contacts(conn: Connection, notifier: str) -> dict[str, SavedContact]:
    """contact -> its stored settings, for one notifier."""
    rows = conn.execute(sa.select(irc_contacts).where(irc_contacts.c.notifier == notifier))
    found = {}
    for r in rows:
        try:
            events = json.loads(r.events)
        except ValueError:
            events = []
        names = frozenset(e for e in events if isinstance(e, str)) \
            if isinstance(events, list) else frozenset()
        found[r.contact] = SavedContact(r.contact, names, bool(r.muted), r.updated_at,
                                        r.updated_by)
    return found
