"""``StatusPush`` and ``HttpStatusPush``: Buildbot 0.8's status event push, fed by the
event outbox.

0.8 queued packets in memory (and on disk, in pickles) and lost them on a crash, when the
queue overflowed, or for ever on a packet the server refused. Here the queue *is* the
event outbox: each packet is made from its outbox event when it is sent (see
:mod:`bbweb.status.push_events` for how the event becomes 0.8's payloads, and
:mod:`bbweb.plugins.notifiers.push_packets` for ids and bodies), so a receiver that is
down for an hour gets every packet afterwards, in order, across daemon restarts.

The daemon hands events one at a time; when one is handled the packets of the events
after it (up to ``chunkSize``) go in the same request, and those events are then passed
over as already sent. A request whose body would reach ``maxHttpRequestSize`` is halved
until it fits; a single packet still too large is dropped and recorded as skipped. After
a failed request the next one carries a single packet (as in 0.8) and is made after
``retryDelay`` seconds. What changed from 0.8 on purpose is in docs/compat.md.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bbweb.engine import events as outbox
from bbweb.mastercfg.errors import caller_location, config_error
from bbweb.plugins.notifiers.base import DeliveryError, Notification, Notifier, Rejected
from bbweb.plugins.notifiers.outgoing_http import HttpClient, check_http_url, redact_url
from bbweb.plugins.notifiers.push_packets import (
    SIGNATURE_HEADER,
    Packet,
    PacketQueue,
    encode_packets,
    event_of,
    make_packets,
    signature,
    utc_text,
)
from bbweb.status import push_events

log = logging.getLogger("bbweb.notifiers.status_push")

# Names 0.8 documented but never sent: accepted in blackList, nothing to leave out.
NEVER_SENT = ("requestCancelled", "buildETAUpdate", "stepTextChanged", "stepText2Changed",
              "stepETAUpdate", "logStarted", "logFinished", "builderRemoved")
DEFAULT_CHUNK = 200
READ_AHEAD_EVENTS = 500  # outbox events read at most to fill one request


@dataclass
class PushRequest:
    packets: list[Packet]
    body: bytes

    @property
    def last_id(self) -> int:
        return int(self.packets[-1]["id"])


def _callable_option(label: str, value: Any, option: str) -> Callable[..., Any]:
    """A callable option; from plugins.toml ``"package.module:function"``."""
    if isinstance(value, str):
        module, _, attr = value.partition(":")
        if not module or not attr:
            config_error(f"{label}: {option}={value!r} must be a function, or "
                         "'package.module:function' naming one")
        try:
            value = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            config_error(f"{label}: {option}={value!r} cannot be imported: {exc}")
    if not callable(value):
        config_error(f"{label}: Please pass serverPushCb parameter. ({option} must be "
                     "callable)")
    return value  # type: ignore[no-any-return]


def _seconds(label: str, option: str, value: Any, positive: bool) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0 \
            or (positive and value == 0):
        kind = "a positive" if positive else "a non-negative"
        config_error(f"{label}: {option} must be {kind} number of seconds, not {value!r}")
    return float(value)


def _count(label: str, option: str, value: Any, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        config_error(f"{label}: {option} must be a whole number of at least {minimum}, "
                     f"not {value!r}")
    return int(value)


class StatusPush(Notifier):
    """Pushes 0.8's status packets to ``serverPushCb(self)``, which takes them with
    ``self.queue.popChunk()`` (packets it does not take are offered again)."""

    plugin_name = "statuspush"
    event_kinds = push_events.KINDS
    label = "StatusPush"

    def __init__(self, serverPushCb: Any = None, queue: Any = None, path: Any = None,
                 filter: bool = True, bufferDelay: float = 1, retryDelay: float = 5,
                 blackList: Any = None, *, name: str | None = None,
                 chunkSize: int = DEFAULT_CHUNK, **unknown: Any) -> None:
        label = self.label
        if unknown:
            config_error(f"{label}: unknown argument(s) {', '.join(sorted(unknown))}")
        super().__init__(name)
        self.location = caller_location()
        self.serverPushCb = (None if serverPushCb is None and type(self) is not StatusPush
                             else _callable_option(label, serverPushCb, "serverPushCb"))
        # 0.8's queue objects and state directory: the event outbox replaces both
        self.queue_given, self.path = queue, path
        if path is not None and not isinstance(path, str):
            config_error(f"{label}: path must be a directory name (it is not needed: "
                         "packets wait in the event outbox)")
        if not isinstance(filter, bool):
            config_error(f"{label}: filter must be True or False")
        self.filter = filter
        self.bufferDelay = _seconds(label, "bufferDelay", bufferDelay, positive=False)
        self.retryDelay = _seconds(label, "retryDelay", retryDelay, positive=True)
        self.blackList = self._check_black_list(blackList)
        self.chunkSize = _count(label, "chunkSize", chunkSize, 1)
        self.queue = PacketQueue([])
        self._sent_through = 0  # the last packet id delivered (or given up on)
        self._failed = False  # the last request failed: the next carries one packet
        self._started: str | None = None
        self._planned_through: int | None = None  # the last packet id of this event's notes

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def _check_black_list(self, value: Any) -> frozenset[str]:
        if value is None:
            return frozenset()
        if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset) \
                or not all(isinstance(v, str) for v in value):
            config_error(f"{self.label}: blackList must be a list of event names")
        known = set(push_events.EVENT_NAMES) | set(NEVER_SENT)
        unknown = sorted(set(value) - known)
        if unknown:
            config_error(f"{self.label}: blackList has unknown event name(s) "
                         f"{', '.join(unknown)}; the events are "
                         f"{', '.join(push_events.EVENT_NAMES)}")
        names = set(value)
        if "builderRemoved" in names:  # 0.8 sent it misspelt, and never matched this
            names.add("buildedRemoved")
        return frozenset(names)

    # -- running -------------------------------------------------------------------------

    def open(self) -> None:
        """Say ``start`` through the outbox: the packet gets an outbox id like the rest.
        A notifier seen for the first time starts right before that event."""
        super().open()
        with self.db.write() as conn:
            if push_events.saved_cursor(conn, self.consumer_name) is None:
                outbox.set_cursor(conn, self.consumer_name, outbox.latest_event_id(conn))
            outbox.emit(conn, push_events.OWN_START, notifier=self.name)
        self._started = None
        self._failed = False

    def close(self) -> None:
        """Say ``shutdown`` through the outbox: it goes out when the daemon next runs this
        notifier (the daemon is stopping now), right before the new ``start``."""
        try:
            with self.db.write() as conn:
                outbox.emit(conn, push_events.OWN_STOP, notifier=self.name)
        except Exception:
            log.exception("%r: could not record the shutdown event", self)

    def started(self) -> str:
        """0.8's ``started``: when this notifier first ran, kept across restarts."""
        if self._started is None:
            with self.db.read() as conn:
                first = push_events.first_time_of(conn, push_events.OWN_START, self.name)
            self._started = utc_text(first if first is not None else time.time())
        return self._started

    # -- deciding ------------------------------------------------------------------------

    def notifications_for(self, event: dict[str, Any]) -> list[Notification]:
        event_id = int(event["id"])
        if event_id < event_of(self._sent_through):
            return []  # went out with an earlier event's request (packets go in order)
        wait = float(event["created_at"]) + self.bufferDelay - time.time()
        if wait > 0:  # let the events that follow at once join this request
            time.sleep(min(wait, self.bufferDelay))
        limit = 1 if self._failed else self.chunkSize
        packets = self._packets_from(event, limit)
        notes: list[Notification] = []
        while packets and event_of(packets[0]["id"]) == event_id:
            note, count = self._next_request(packets, limit)
            self._planned_through = int(packets[count - 1]["id"])
            packets = packets[count:]
            notes.append(note)
        return notes

    def handle_event(self, event: dict[str, Any]) -> None:
        self._planned_through = None
        super().handle_event(event)
        # every request for this event is settled: sent, skipped (a packet too large),
        # rejected, or found already sent before a restart
        if self._planned_through is not None:
            self._sent_through = max(self._sent_through, self._planned_through)
            self._planned_through = None

    def _packets_from(self, event: dict[str, Any], limit: int) -> list[Packet]:
        """Unsent packets of ``event`` and, up to ``limit`` in all, of the events after it
        (all of ``event``'s own, whatever their number)."""
        with self.db.read() as conn:
            batch = outbox.read_events(conn, int(event["id"]) - 1,
                                       min(READ_AHEAD_EVENTS, 2 * limit + 10))
            found: list[Packet] = []
            builds_read = push_events.read_builds(conn, [
                ev for ev in batch if int(ev["id"]) >= event_of(self._sent_through)])
            for ev in batch:
                if ev["kind"] not in self.event_kinds or \
                        int(ev["id"]) < event_of(self._sent_through):
                    continue
                if found and len(found) >= limit:
                    break
                made = make_packets(
                    ev, push_events.status_events(conn, self.config, ev, self.name,
                                                  builds_read),
                    project=self.config.title, started=self.started(),
                    filter_values=self.filter, black_list=self.blackList)
                found.extend(p for p in made if p["id"] > self._sent_through)
        return found

    def _next_request(self, packets: list[Packet], limit: int) -> tuple[Notification, int]:
        """The next request from the front of ``packets`` and how many it takes."""
        count = min(limit, len(packets))
        chunk = packets[:count]
        key = f"packets-{chunk[0]['id']}-{chunk[-1]['id']}"
        what = (f"packet {chunk[0]['id']} ({chunk[0]['event']})" if count == 1 else
                f"{count} packets {chunk[0]['id']}-{chunk[-1]['id']}")
        return Notification(key=key, what=what, recipients=self.recipients(),
                            payload=PushRequest(chunk, b"")), count

    def recipients(self) -> list[str]:
        return []

    # -- delivering ----------------------------------------------------------------------

    def deliver(self, notification: Notification) -> str:
        request: PushRequest = notification.payload
        self.queue = PacketQueue(request.packets)
        try:
            assert self.serverPushCb is not None
            self.serverPushCb(self)
        except Exception as exc:
            self._failed = True
            raise DeliveryError(f"serverPushCb failed: {type(exc).__name__}: {exc}",
                                retry_after=self.retryDelay) from exc
        taken = sorted(p["id"] for p in self.queue.taken)
        # only a prefix counts as delivered: the packets must arrive in order
        delivered = 0
        for packet, taken_id in zip(request.packets, taken, strict=False):
            if packet["id"] != taken_id:
                break
            delivered += 1
        if delivered == 0:
            self._failed = True
            raise DeliveryError("serverPushCb took no packets", retry_after=self.retryDelay)
        self._sent_through = int(request.packets[delivered - 1]["id"])
        self._failed = False
        if delivered < len(request.packets):
            self._planned_through = self._sent_through  # the rest is not settled
            # the rest are offered again: soon, and without recording a failure if they
            # belong to later events (the daemon hands those over next)
            first_left = event_of(int(request.packets[delivered]["id"]))
            if first_left == event_of(int(request.packets[0]["id"])):
                raise DeliveryError(f"serverPushCb took {delivered} of "
                                    f"{len(request.packets)} packets",
                                    retry_after=self.bufferDelay)
        return f"serverPushCb took {delivered} of {len(request.packets)} packets"

    def queueNextServerPush(self) -> None:
        """0.8 callbacks call this after popping; the daemon schedules the next push."""


class HttpStatusPush(StatusPush):
    """POSTs the packets to ``serverUrl``: the form field ``packets`` (a JSON array), or
    with ``format='json'`` the array itself; signed with ``secret=`` when given."""

    plugin_name = "httpstatuspush"
    label = "HttpStatusPush"

    def __init__(self, serverUrl: Any = None, debug: Any = None, maxMemoryItems: Any = None,
                 maxDiskItems: Any = None, chunkSize: int = DEFAULT_CHUNK,
                 maxHttpRequestSize: int = 2 ** 20, extra_post_params: Any = None, *,
                 secret: Any = None, format: str = "form", timeout: float = 30.0,
                 **kwargs: Any) -> None:
        if "serverPushCb" in kwargs:
            config_error("HttpStatusPush: serverPushCb is StatusPush's argument; "
                         "HttpStatusPush posts to serverUrl")
        super().__init__(chunkSize=chunkSize, **kwargs)
        if not isinstance(serverUrl, str) or not serverUrl.strip():
            config_error("HttpStatusPush requires a serverUrl")
        problem = check_http_url(serverUrl)
        if problem:
            config_error(f"HttpStatusPush: serverUrl {problem}")
        self.serverUrl: str = serverUrl
        self.debug = bool(debug)
        for option, value in (("maxMemoryItems", maxMemoryItems),
                              ("maxDiskItems", maxDiskItems)):
            if value is not None:  # accepted; the outbox holds everything
                _count("HttpStatusPush", option, value, 0)
        self.maxHttpRequestSize = _count("HttpStatusPush", "maxHttpRequestSize",
                                         maxHttpRequestSize, 1)
        self.extra_post_params = self._check_params(extra_post_params)
        if format not in ("form", "json"):
            config_error(f"HttpStatusPush: format must be 'form' (0.8's packets= form "
                         f"field) or 'json' (a JSON array), not {format!r}")
        if format == "json" and self.extra_post_params:
            config_error("HttpStatusPush: extra_post_params are form fields; they need "
                         "format='form'")
        self.format = format
        if secret is not None and (not isinstance(secret, str) or not secret):
            config_error("HttpStatusPush: secret must be a non-empty string")
        self._secret: str | None = secret
        self.http = HttpClient(read_timeout=_seconds("HttpStatusPush", "timeout", timeout,
                                                     positive=True))

    def __repr__(self) -> str:  # never the secret, nor a password in the URL
        return f"<HttpStatusPush {self.name!r} to {redact_url(self.serverUrl)}>"

    @staticmethod
    def _check_params(params: Any) -> dict[str, str]:
        if params is None:
            return {}
        if not isinstance(params, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
            config_error("HttpStatusPush: extra_post_params must be a dictionary of "
                         "strings")
        if "packets" in params:
            config_error("HttpStatusPush: extra_post_params cannot set 'packets' (the "
                         "field that carries the packets)")
        return dict(params)

    def recipients(self) -> list[str]:
        return [redact_url(self.serverUrl)]

    def close(self) -> None:
        super().close()
        self.http.close()

    def _encode(self, packets: list[Packet]) -> bytes:
        return encode_packets(packets, body_format=self.format, debug=self.debug,
                              extra_post_params=self.extra_post_params)

    def _next_request(self, packets: list[Packet], limit: int) -> tuple[Notification, int]:
        """Halve the chunk until its body is smaller than ``maxHttpRequestSize``; a single
        packet that is still too large becomes a skipped notification."""
        count = min(limit, len(packets))
        body = self._encode(packets[:count])
        while len(body) >= self.maxHttpRequestSize and count > 1:
            count = max(1, count // 2)
            body = self._encode(packets[:count])
        note, count = super()._next_request(packets, count)
        if len(body) >= self.maxHttpRequestSize:
            packet = packets[0]
            note.skip_reason = (f"packet {packet['id']} was dropped, too large: "
                                f"{len(body)} > {self.maxHttpRequestSize}")
            log.error("%r: %s", self, note.skip_reason)
            return note, 1
        note.payload = PushRequest(packets[:count], body)
        return note, count

    def deliver(self, notification: Notification) -> str:
        request: PushRequest = notification.payload
        headers = {"Content-Type": "application/json" if self.format == "json"
                   else "application/x-www-form-urlencoded"}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = signature(self._secret, request.body)
        shown = redact_url(self.serverUrl)
        try:
            answer = self.http.post(self.serverUrl, data=request.body, headers=headers)
        except Rejected:
            self._sent_through = request.last_id  # refused for good: go on
            raise
        except DeliveryError as exc:
            self._failed = True
            log.warning("Failed to push %d events to %s: %s", len(request.packets), shown,
                        exc)
            raise DeliveryError(str(exc), retry_after=exc.retry_after
                                if exc.retry_after is not None else self.retryDelay) from None
        self._sent_through = request.last_id
        self._failed = False
        log.info("Sent %d events to %s", len(request.packets), shown)
        return f"{answer} ({len(request.packets)} packets)"
