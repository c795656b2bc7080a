"""StatusPush packets: 0.8's JSON objects, their ids, and the request bodies that carry them.

A packet is ``{"id", "timestamp", "project", "started", "event", "payload"}`` as 0.8 sent
it. The id comes from the event outbox: ``event id × PACKETS_PER_EVENT + position`` of the
packet among those its event stands for. Outbox ids only grow and are never reused, so
packet ids only grow, never repeat (also across daemon restarts), and a packet sent again
after a crash carries the id it had the first time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from bbweb.status.jsondocs import filter_empty

PACKETS_PER_EVENT = 10_000
"""Packet ids of one outbox event: ``event_id * PACKETS_PER_EVENT`` onwards."""

SIGNATURE_HEADER = "X-Bbweb-Signature-256"

Packet = dict[str, Any]


def utc_text(epoch: float) -> str:
    """0.8's ``timestamp``/``started``: ``str()`` of a UTC datetime,
    ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def make_packets(event: dict[str, Any], status_events: list[tuple[str, dict[str, Any]]], *,
                 project: str, started: str, filter_values: bool,
                 black_list: frozenset[str]) -> list[Packet]:
    """The packets of one outbox event, blacklisted event names left out (their ids are
    skipped, so the others keep theirs)."""
    packets = []
    base = int(event["id"]) * PACKETS_PER_EVENT
    for position, (name, payload) in enumerate(status_events[:PACKETS_PER_EVENT]):
        if name in black_list:
            continue
        if filter_values:
            # each value is filtered, the payload itself is not (as in 0.8)
            payload = {key: filter_empty(value) for key, value in payload.items()}
        packets.append({"id": base + position, "timestamp": utc_text(event["created_at"]),
                        "project": project, "started": started, "event": name,
                        "payload": payload})
    return packets


def event_of(packet_id: int) -> int:
    return packet_id // PACKETS_PER_EVENT


def encode_packets(packets: list[Packet], *, body_format: str, debug: bool,
                   extra_post_params: dict[str, str]) -> bytes:
    """The request body: the form field ``packets`` (a JSON array; compact, or indented
    with sorted keys under ``debug``) plus ``extra_post_params``; or, with
    ``body_format="json"``, the JSON array itself."""
    if debug:
        text = json.dumps(packets, indent=2, sort_keys=True)
    else:
        text = json.dumps(packets, separators=(",", ":"))
    if body_format == "json":
        return text.encode("utf-8")
    return urlencode({"packets": text, **extra_post_params}).encode("ascii")


def signature(secret: str, body: bytes) -> str:
    """The ``X-Bbweb-Signature-256`` value: ``sha256=`` and the hex HMAC-SHA256 of the
    body with the shared secret (GitHub's webhook scheme, so receivers can reuse code)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class PacketQueue:
    """What a ``StatusPush(serverPushCb)`` callback finds in ``self.queue``: the packets
    ready to go, with the methods of 0.8's queues that such callbacks used."""

    def __init__(self, packets: list[Packet]) -> None:
        self._items = list(packets)
        self.taken: list[Packet] = []

    def popChunk(self, nbItems: int | None = None) -> list[Packet]:
        count = len(self._items) if nbItems is None else max(0, int(nbItems))
        chunk, self._items = self._items[:count], self._items[count:]
        self.taken.extend(chunk)
        return chunk

    def pop(self) -> Packet | None:
        chunk = self.popChunk(1)
        return chunk[0] if chunk else None

    def insertBackChunk(self, chunk: list[Packet]) -> None:
        """Put packets back (a callback whose own sending failed): they are offered again
        later."""
        back = {p["id"] for p in chunk}
        self.taken = [p for p in self.taken if p["id"] not in back]
        self._items = sorted([*chunk, *self._items], key=lambda p: p["id"])

    def pushItem(self, item: Packet) -> None:
        raise TypeError("StatusPush: packets come from the event outbox; a callback cannot "
                        "add its own")

    def items(self) -> list[Packet]:
        return list(self._items)

    def nbItems(self) -> int:
        return len(self._items)

    def save(self) -> None:
        """Nothing to save: the outbox is the queue."""
