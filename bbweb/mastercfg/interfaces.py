"""What an object in master.cfg must offer when bbweb's own layers above, a plugin or the
user's code provides it: a poller in ``c['change_source']``, an event consumer (a notifier)
in ``c['status']``, an authentication back end in ``Authz(auth=…)``.

The loader recognises them by these protocols (it cannot import the packages that
implement them: they import the configuration), and the daemon and the web processes use
the same checks, so what the loader accepts is what runs. The plugin kinds loaded from
plugins.toml are checked by :mod:`bbweb.plugins.interfaces`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Poller(Protocol):
    """A change source the master daemon polls (``GitPoller``, ``SVNPoller``; best
    derived from :class:`bbweb.changes.PollingChangeSource`, which has the helpers)."""

    name: str  # unique among the pollers; the key of its saved state
    pollInterval: float  # noqa: N815 (Buildbot's name): seconds between polls
    pollAtLaunch: bool  # noqa: N815: poll at once when the daemon becomes active

    def describe(self) -> str:
        """One line for the pages."""
        ...

    def poll(self, db: Any, config: Any, *, lock: Any = None,
             stop: threading.Event | None = None) -> list[int]:
        """Look for new changes and store them; the new change ids, oldest first."""
        ...


def pollers_of(change_sources: Iterable[Any]) -> list[Poller]:
    """The pollers among ``c['change_source']`` (the others are only shown on the pages)."""
    return [s for s in change_sources if isinstance(s, Poller)]


@runtime_checkable
class EventConsumer(Protocol):
    """The required part of the event consumer interface, a notifier's too: the optional
    parts and the delivery rules are described in :mod:`bbweb.daemon.consumers`."""

    consumer_name: str

    def handle_event(self, event: dict[str, Any]) -> None: ...


def is_consumer(obj: Any) -> bool:
    """Whether ``obj`` follows the consumer interface (duck-typed, like Buildbot's
    documented status targets)."""
    return isinstance(getattr(obj, "consumer_name", None), str) and \
        callable(getattr(obj, "handle_event", None))


@runtime_checkable
class AuthBackend(Protocol):
    """An authentication back end (Buildbot 0.8's ``IAuth``): the required method.
    ``errmsg()`` and ``getUserInfo(user)`` are optional (:class:`bbweb.auth.IAuth` has
    both); bbweb sets a ``master`` attribute on it at start-up."""

    def authenticate(self, user: str, passwd: str) -> bool: ...
