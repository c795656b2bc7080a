"""What every notifier shares: deciding from events, delivering once, recording attempts.

A notifier (mail, and later IRC, HTTP push, Gerrit, GitHub) is an event consumer of the
master daemon (:mod:`bbweb.daemon.consumers`): the daemon feeds it the events of the
outbox in order, from a thread of its own, and retries an event with backoff for as long
as handling it raises. This base class turns that into a small contract for a plugin:

``notifications_for(event) -> list[Notification]``
    What to send about one event, decided from the event and the status database only
    (never from the clock or from what happened to be in memory), so handling the same
    event again after a restart or an outage decides the same thing. Each notification
    has a ``key`` that is stable across such repeats (for mail, its Message-ID).

``deliver(notification) -> str``
    Send it; return the receiver's answer. Raise :class:`DeliveryError` (or anything
    else) when it may work later (server down, timeout, temporary refusal): the attempt
    is recorded as ``failed`` and the whole event is retried later, so after an outage
    everything pending goes out in event order. Raise :class:`Rejected` when the receiver
    refused it for good: it is recorded as ``rejected`` and the notifier moves on.

Every attempt is a row of the ``notifications`` table (notifier, event, what, to whom,
when, outcome, the server's answer), shown on ``/notifications``. A notification already
recorded as sent (or skipped, or rejected) for the same notifier, event and key is not
delivered again, so a retried event only sends what is still missing; the window between
a receiver accepting a message and the row saying so is covered by the key (a mail sent
twice across a crash carries the same Message-ID both times).

Third-party notifiers subclass :class:`Notifier` and register under the
``bbweb.notifiers`` entry point (docs/plugins.md); :func:`check_notifier_class` is what
the loader checks them against.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import sqlalchemy.exc

from bbweb.engine import notifications as records
from bbweb.mastercfg.errors import config_error
from bbweb.status.notifications import delivery_settled
from bbweb.status.objects import MasterStatus

log = logging.getLogger("bbweb.notifiers")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
CONSUMER_PREFIX = "notifier."
PRUNE_EVERY = 1000  # recorded attempts between two prunings of old rows


class DeliveryError(Exception):
    """Delivery failed but may work later: the event is retried with backoff.

    ``retry_after`` (seconds), when the receiver said when to come back (a rate limit's
    reset, ``Retry-After``) or the notifier has its own retry delay, replaces the daemon's
    backoff for this retry, so the receiver is neither hammered nor kept waiting longer
    than needed."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Rejected(Exception):
    """The receiver refused this notification for good (e.g. SMTP 5xx for every
    recipient): it is recorded and not retried."""


@dataclass
class Notification:
    """One message a notifier decided to send about one event.

    ``key`` identifies it among the notifications of its event across retries and
    restarts (the mail notifier uses the Message-ID). ``payload`` is whatever
    :meth:`Notifier.deliver` needs. With ``skip_reason`` set nothing is delivered and the
    attempt is recorded as ``skipped`` with that reason (e.g. nobody to mail)."""

    key: str
    what: str
    recipients: Sequence[str] = ()
    payload: Any = None
    builder: str | None = None
    build_number: int | None = None
    buildsetid: int | None = None
    skip_reason: str | None = None


# Errors that say nothing about the event but about the database: handling is retried.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (DeliveryError,
                                                    sqlalchemy.exc.OperationalError,
                                                    sqlalchemy.exc.InterfaceError)


class Notifier:
    """Base class of notifiers: subclass it, set ``plugin_name`` and ``event_kinds``, and
    implement :meth:`notifications_for` and :meth:`deliver`.

    ``name`` names this notifier in the daemon (its position in the event stream is
    saved under ``notifier.<name>``) and on /notifications; it defaults to the plugin
    name. Two notifiers of one master need different names (the loader numbers
    unnamed duplicates and warns)."""

    plugin_name: ClassVar[str] = "notifier"
    event_kinds: ClassVar[frozenset[str]] = frozenset()
    # A notifier added to an existing master reports what happens from then on, not the
    # whole history.
    initial_position = "latest"

    def __init__(self, name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not NAME_PATTERN.match(name)):
            config_error(f"{type(self).__name__}: name={name!r} must be 1-100 letters, "
                         "digits, '_', '.' or '-' (it names the notifier in the daemon "
                         "and on /notifications)")
        self.name: str = name or self.plugin_name
        self.name_given = name is not None
        self.db: Any = None
        self.config: Any = None
        self.master_status: Any = None
        self._recorded = 0

    # -- the consumer interface ----------------------------------------------------------

    @property
    def consumer_name(self) -> str:
        return CONSUMER_PREFIX + self.name

    def bind(self, db: Any, cfg: Any) -> None:
        """Give the notifier the status database and the master's configuration (the
        daemon does this before dispatching any event)."""
        self.db = db
        self.config = cfg
        self.master_status = MasterStatus(db, cfg)

    def open(self) -> None:
        """The daemon became active: drop attempt records past their retention."""
        self._prune()

    def close(self) -> None:
        """The daemon stops being active: release connections (subclasses)."""

    def handle_event(self, event: dict[str, Any]) -> None:
        if event["kind"] not in self.event_kinds:
            return
        if self.db is None:
            raise RuntimeError(f"notifier {self.name!r} was not bound to a database")
        try:
            found = self.notifications_for(event)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # a formatter or lookup bug: say it, do not stop forever
            log.exception("notifier %r could not make its notification for event %d (%s)",
                          self.name, event["id"], event["kind"])
            self._record_final(event, Notification(
                key=f"event-{event['id']}", what=self.describe_event(event)), "error",
                f"{type(exc).__name__}: {exc}")
            return
        for note in found:
            self._deliver_once(event, note)

    # -- what subclasses provide ---------------------------------------------------------

    def notifications_for(self, event: dict[str, Any]) -> list[Notification]:
        """What to send about ``event`` (one of ``event_kinds``)."""
        raise NotImplementedError

    def deliver(self, notification: Notification) -> str:
        """Send one notification; return the receiver's answer."""
        raise NotImplementedError

    def describe_event(self, event: dict[str, Any]) -> str:
        """A short text for an event whose notification could not be made."""
        payload = event.get("payload") or {}
        if "builder" in payload and "number" in payload:
            return f"{payload['builder']} #{payload['number']}"
        if "buildsetid" in payload:
            return f"buildset {payload['buildsetid']}"
        return str(event.get("kind"))

    # -- delivering once -----------------------------------------------------------------

    def _deliver_once(self, event: dict[str, Any], note: Notification) -> None:
        event_id = int(event["id"])
        with self.db.read() as conn:
            done = delivery_settled(conn, self.name, event_id, note.key)
        if done:
            log.info("notifier %r: %s (event %d) was already delivered; not sending it "
                     "again", self.name, note.what, event_id)
            return
        if note.skip_reason is not None:
            log.info("notifier %r: nothing sent for %s: %s", self.name, note.what,
                     note.skip_reason)
            self._record_final(event, note, "skipped", note.skip_reason)
            return
        with self.db.write() as conn:
            attempt = records.start_attempt(conn, self.name, event_id, note.key,
                                            **_row_fields(note))
        self._count_record()
        try:
            answer = self.deliver(note)
        except Rejected as exc:
            log.warning("notifier %r: %s was refused for good: %s", self.name, note.what, exc)
            self._finish(attempt, "rejected", str(exc))
            return
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            self._finish(attempt, "failed", message)
            raise DeliveryError(f"{note.what}: {message}",
                                retry_after=getattr(exc, "retry_after", None)) from exc
        self._finish(attempt, "sent", answer)

    def _finish(self, attempt: int, outcome: str, answer: str) -> None:
        with self.db.write() as conn:
            records.finish_attempt(conn, attempt, outcome, answer)

    def _record_final(self, event: dict[str, Any], note: Notification, outcome: str,
                      answer: str) -> None:
        with self.db.write() as conn:
            records.start_attempt(conn, self.name, int(event["id"]), note.key,
                                  outcome=outcome, answer=answer, **_row_fields(note))
        self._count_record()

    def _count_record(self) -> None:
        self._recorded += 1
        if self._recorded % PRUNE_EVERY == 0:
            self._prune()

    def _prune(self) -> None:
        if self.db is None:
            return
        try:
            with self.db.write() as conn:
                records.prune(conn)
        except Exception:
            log.exception("notifier %r: could not prune old delivery records", self.name)


def _row_fields(note: Notification) -> dict[str, Any]:
    return {"what": note.what, "recipients": list(note.recipients), "builder": note.builder,
            "build_number": note.build_number, "buildsetid": note.buildsetid}


def check_notifier_class(name: str, cls: Any) -> str | None:
    """Why the object registered as notifier ``name`` cannot be used, or None.

    A notifier plugin is a :class:`Notifier` subclass implementing
    ``notifications_for(self, event)`` and ``deliver(self, notification)``, or any class
    whose instances have a ``consumer_name`` string and ``handle_event(self, event)``."""
    if not inspect.isclass(cls):
        return (f"notifier plugin {name!r} is {type(cls).__name__} {cls!r}, not a class "
                "(register the notifier class itself)")
    if issubclass(cls, Notifier):
        for method, params in (("notifications_for", 1), ("deliver", 1)):
            impl = getattr(cls, method)
            if impl is getattr(Notifier, method):
                return (f"notifier plugin {name!r} ({cls.__module__}.{cls.__qualname__}) "
                        f"does not implement {method}()")
            problem = _arity_problem(impl, params)
            if problem:
                return (f"notifier plugin {name!r}: {cls.__qualname__}.{method}() "
                        f"{problem}")
        if not cls.event_kinds:
            return (f"notifier plugin {name!r}: {cls.__qualname__}.event_kinds is empty "
                    "(name the event kinds it acts on, e.g. 'build.finished')")
        return None
    handler = getattr(cls, "handle_event", None)
    if not callable(handler):
        return (f"notifier plugin {name!r} ({cls.__module__}.{cls.__qualname__}) is neither "
                "a bbweb.plugins.notifiers.base.Notifier subclass nor an event consumer "
                "(a class with consumer_name and handle_event(event))")
    problem = _arity_problem(handler, 1)
    return f"notifier plugin {name!r}: handle_event() {problem}" if problem else None


def _arity_problem(func: Any, positional: int) -> str | None:
    """Whether ``func`` (a plain function on a class) takes self plus ``positional``
    positional arguments."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    takes = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in takes if p.default is p.empty]
    if len(takes) < positional + 1 or len(required) > positional + 1:
        return (f"must take exactly {positional} argument(s) besides self; its signature "
                f"is {sig}")
    return None
