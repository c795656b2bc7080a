"""The IRC bot's contacts: each channel it joins and each nick it talks to privately, with
the build events that contact wants to hear about and whether it muted the bot.

Buildbot 0.8 kept these in memory only, so a reconnect or a restart of the master forgot
every ``notify on`` and ``mute``. Here a contact whose settings were changed by a command
is stored in the database (``irc_contacts``) and comes back with the next connection and
the next daemon; a contact nobody changed has the configured ``notify_events``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bbweb.engine.irc_contacts import save_contact
from bbweb.status.irc_contacts import saved_contacts

BASE_EVENTS = ("started", "finished", "success", "warnings", "failure", "exception")
_STATES = ("success", "warnings", "exception", "failure")
TRANSITIONS = tuple(f"{x}To{y.capitalize()}" for x in _STATES for y in _STATES)
VALID_EVENTS = frozenset(BASE_EVENTS + TRANSITIONS)
DEFAULT_ON = ("started", "finished")


class BadEvent(ValueError):
    """Not an event name ``notify`` knows."""


def check_event(name: object) -> str:
    if not isinstance(name, str) or name not in VALID_EVENTS:
        raise BadEvent(f"{name!r} is not a notify event (one of {', '.join(BASE_EVENTS)} "
                       "or xToY, x and Y each one of success, warnings, exception, failure "
                       "with Y capitalised, e.g. successToFailure)")
    return name


def is_channel(name: str) -> bool:
    return name.startswith(("#", "&"))


@dataclass
class Contact:
    """A channel (``#name``) or a nick, lower-cased."""

    name: str
    events: set[str] = field(default_factory=set)
    muted: bool = False

    @property
    def channel(self) -> bool:
        return is_channel(self.name)


class ContactBook:
    """Every contact of one bot, shared by the connection thread (commands) and the
    notifier thread (announcements); changes are written through to the database."""

    def __init__(self, db: Any, notifier: str, default_events: Iterable[str],
                 configured: Iterable[str]) -> None:
        self.db = db
        self.notifier = notifier
        self.default_events = frozenset(default_events)
        self._lock = threading.Lock()
        self._contacts: dict[str, Contact] = {}
        self._configured = [c.lower() for c in configured]

    def load(self) -> None:
        """The configured contacts (channels, ``pm_to_nicks``) and every stored one."""
        with self.db.read() as conn:
            stored = saved_contacts(conn, self.notifier)
        with self._lock:
            self._contacts = {}
            for name in self._configured:
                self._contacts[name] = Contact(name, set(self.default_events))
            for name, saved in stored.items():
                self._contacts[name] = Contact(name, set(saved.events & VALID_EVENTS),
                                               saved.muted)

    def get(self, name: str) -> Contact:
        """The contact of ``name``; a new one has the default events (0.8: anybody who
        talks to the bot privately is subscribed to them, for this connection)."""
        key = name.lower()
        with self._lock:
            found = self._contacts.get(key)
            if found is None:
                found = self._contacts[key] = Contact(key, set(self.default_events))
            return Contact(found.name, set(found.events), found.muted)

    def all(self) -> list[Contact]:
        with self._lock:
            return [Contact(c.name, set(c.events), c.muted)
                    for c in sorted(self._contacts.values(), key=lambda c: c.name)]

    def update(self, name: str, *, events: Iterable[str] | None = None,
               muted: bool | None = None, by: str = "") -> Contact:
        """Change and store a contact's settings; returns the new settings."""
        key = name.lower()
        with self._lock:
            contact = self._contacts.get(key) or Contact(key, set(self.default_events))
            new = Contact(key, set(contact.events if events is None else events),
                          contact.muted if muted is None else muted)
        with self.db.write() as conn:
            save_contact(conn, self.notifier, key, new.events, new.muted, by)
        with self._lock:
            self._contacts[key] = new
        return Contact(new.name, set(new.events), new.muted)
