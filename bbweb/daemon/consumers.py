"""The event consumer interface: how notifiers (and anything else) follow the event table.

A **consumer** is any object with

``consumer_name: str``
    A stable, unique name. The daemon stores the consumer's position in the event table
    (``consumer_cursors``) under this name, so renaming a consumer makes it start over and
    two consumers with the same name in one daemon are a configuration error.

``handle_event(event: dict) -> None``
    Called once per event, in increasing ``event["id"]`` order, from a thread that belongs
    to this consumer alone (a slow consumer never delays another). ``event`` is what
    :func:`bbweb.engine.events.read_events` returns: ``{"id": int, "kind": str,
    "created_at": float, "payload": dict}``; ``kind`` is e.g. ``"change.new"``,
    ``"build.started"``, ``"build.finished"``, ``"slave.disconnected"``. Consumers must
    ignore kinds they do not know.

    Delivery is **at least once**: the daemon saves the cursor right after
    ``handle_event`` returns, so a crash (or a lost database lock) between the two
    re-delivers that single event to the next daemon. Make handling idempotent where a
    duplicate would hurt, e.g. remember the last event id you acted on.

    Raising an exception means "not handled": the daemon logs it with the consumer's name
    and retries *the same event* later with exponential backoff. It never skips an event,
    so a consumer that can never handle some event stops there until it is fixed. An
    exception with a ``retry_after`` attribute (seconds, e.g.
    :class:`bbweb.plugins.notifiers.base.DeliveryError`) sets the wait before that retry
    instead of the backoff: a rate-limited server is asked again when its limit resets.

Optional attributes and methods:

``initial_position: str = "oldest"``
    Where a consumer seen for the first time (no saved cursor) starts: ``"oldest"`` sees
    the whole history, ``"latest"`` only events emitted from then on (what a mail or IRC
    notifier added to an existing master wants).

``open() -> None`` / ``close() -> None``
    Called in the consumer's thread when the daemon becomes active (holds the lock) and
    when it stops being active (shutdown or lost lock). The place to connect to and
    disconnect from IRC, an SMTP server, a push endpoint. An exception from ``open()`` is
    logged and retried with backoff; one from ``close()`` is logged.

Consumers come from ``run_daemon(consumers=[...])``, from every object in master.cfg's
``c['status']`` that has both ``consumer_name`` and ``handle_event``, and from the
notifiers plugins.toml's ``[notifiers]`` enables (:mod:`bbweb.plugins.notifiers.loading`).
Notifiers build on :class:`bbweb.plugins.notifiers.base.Notifier`, which adds delivering
once and recording every attempt.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bbweb.mastercfg.interfaces import EventConsumer, is_consumer

INITIAL_POSITIONS = ("oldest", "latest")

# The required part (consumer_name, handle_event) is checked by master.cfg's loader too.
__all__ = ["ConsumerError", "EventConsumer", "INITIAL_POSITIONS", "collect_consumers",
           "initial_position", "is_consumer"]


class ConsumerError(ValueError):
    """The set of consumers cannot be run (e.g. two share a name)."""


def initial_position(consumer: Any) -> str:
    return getattr(consumer, "initial_position", "oldest") or "oldest"


def collect_consumers(explicit: Iterable[Any] | None, status_targets: Iterable[Any]
                      ) -> list[Any]:
    """The consumers a daemon runs: ``explicit`` ones plus consumer-shaped status targets.

    Raises :class:`ConsumerError` for an explicit object that is not a consumer, an empty
    or duplicate name, or an unknown ``initial_position``.
    """
    found: list[Any] = []
    for obj in explicit or ():
        if not is_consumer(obj):
            raise ConsumerError(f"{obj!r} is not an event consumer (it needs a "
                                "'consumer_name' string and a 'handle_event' method)")
        found.append(obj)
    found.extend(t for t in status_targets if is_consumer(t))
    seen: dict[str, Any] = {}
    for consumer in found:
        name = consumer.consumer_name
        if not name.strip():
            raise ConsumerError(f"event consumer {consumer!r} has an empty consumer_name")
        if len(name) > 255:
            raise ConsumerError(f"event consumer name {name[:40]!r}... is longer than 255 "
                                "characters")
        if name in seen:
            raise ConsumerError(f"two event consumers are named {name!r} ({seen[name]!r} "
                                f"and {consumer!r}); each needs its own consumer_name")
        if initial_position(consumer) not in INITIAL_POSITIONS:
            raise ConsumerError(f"event consumer {name!r}: initial_position must be one of "
                                f"{', '.join(INITIAL_POSITIONS)}")
        seen[name] = consumer
    return found
