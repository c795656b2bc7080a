"""The compact form of step output on its way to the master: zlib-compressed frames.

A worker that prints a lot should not make the master parse JSON and compress every byte:
the master's processes are shared by every worker and every page. So the worker cuts its
output into chunks of one stream (at most :data:`MAX_CHUNK_BYTES` of UTF-8 each, the size
the master stores a chunk in), compresses each one, and sends them as the body of
``POST /api/worker/steps/N/log?log=NAME`` with the content type :data:`MEDIA_TYPE`. The
master checks each frame (it inflates it to verify its length and its UTF-8) and stores the
compressed bytes as they came. A body is a sequence of frames::

    stream (1 byte: o, e or h) | text length (4 bytes, big-endian) |
    compressed length (4 bytes, big-endian) | zlib data (compressed length bytes)

A master that does not know this form refuses it (400 or 415), and the worker sends JSON
(``{"log": NAME, "chunks": [[stream, text], ...]}``) from then on.

This module belongs to the worker package (the worker is installed alone on build hosts);
the master imports it to read what workers send.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

MEDIA_TYPE = "application/x-bbweb-log-frames"
MAX_CHUNK_BYTES = 256 * 1024  # the master's largest stored chunk (bbweb.engine.logs)
LEVEL = 1  # zlib's fastest level: about 7x on build output, several times level 6's speed
STREAMS = frozenset(b"oeh")
_HEAD = struct.Struct(">cII")


class FrameError(ValueError):
    """A body that is not a valid sequence of frames."""


@dataclass(frozen=True)
class Frame:
    stream: str  # "o", "e" or "h"
    size: int  # bytes of UTF-8 text
    compressed: bytes  # zlib data of exactly ``size`` bytes of text


def chunk(pieces: Iterable[tuple[str, str]], limit: int = MAX_CHUNK_BYTES
          ) -> Iterator[tuple[str, bytes]]:
    """``(stream, text)`` pieces as ``(stream, utf-8)`` chunks of at most ``limit`` bytes:
    neighbours of one stream joined, long ones cut (never inside a character)."""
    stream = "o"
    held: list[bytes] = []
    size = 0
    for s, text in pieces:
        data = text.encode("utf-8", errors="replace")
        if not data:
            continue
        if held and s != stream:
            yield stream, b"".join(held)
            held, size = [], 0
        stream = s
        while data:
            room = limit - size
            if len(data) <= room:
                held.append(data)
                size += len(data)
                break
            cut = cut_point(data, room)
            if cut:
                held.append(data[:cut])
                data = data[cut:]
            yield stream, b"".join(held)
            held, size = [], 0
    if held:
        yield stream, b"".join(held)


def cut_point(data: bytes, at: int) -> int:
    """The largest index <= ``at`` that does not split a UTF-8 sequence."""
    at = min(at, len(data))
    while 0 < at < len(data) and (data[at] & 0xC0) == 0x80:
        at -= 1
    return at


def compress(stream: str, data: bytes, level: int = LEVEL) -> Frame:
    """One frame: ``data`` (whole UTF-8, at most MAX_CHUNK_BYTES) of ``stream``."""
    return Frame(stream, len(data), zlib.compress(data, level))


def encode(chunks: Iterable[tuple[str, bytes]], level: int = LEVEL) -> bytes:
    """A body of frames for ``(stream, utf-8)`` chunks (each at most MAX_CHUNK_BYTES)."""
    return body(compress(stream, data, level) for stream, data in chunks)


def body(frames: Iterable[Frame]) -> bytes:
    """The request body of frames compressed already."""
    out = []
    for frame in frames:
        out.append(_HEAD.pack(frame.stream.encode("ascii"), frame.size,
                              len(frame.compressed)))
        out.append(frame.compressed)
    return b"".join(out)


def text(frame: Frame) -> str:
    """A frame's text (for a master that takes JSON only)."""
    return zlib.decompress(frame.compressed).decode("utf-8")


def decode(read: Callable[[int], bytes], max_body: int) -> Iterator[Frame]:
    """The frames of a body read with ``read(n)`` (a file's or a stream's ``read``), each
    checked: a known stream, a length within MAX_CHUNK_BYTES, zlib data that inflates to
    exactly that many bytes of valid UTF-8. Raises :class:`FrameError` for anything else,
    or once more than ``max_body`` bytes were read."""
    total = 0
    while True:
        head = _read_exactly(read, _HEAD.size, allow_eof=True)
        if head is None:
            return
        stream, size, packed_size = _HEAD.unpack(head)
        total += _HEAD.size + packed_size
        if total > max_body:
            raise FrameError(f"the log body is larger than {max_body} bytes")
        if stream[0] not in STREAMS:
            raise FrameError(f"unknown log stream {stream!r} (expected o, e or h)")
        if size > MAX_CHUNK_BYTES or size == 0:
            raise FrameError(f"a frame of {size} bytes (1 to {MAX_CHUNK_BYTES} allowed)")
        packed = _read_exactly(read, packed_size)
        assert packed is not None
        inflater = zlib.decompressobj()
        try:
            text = inflater.decompress(packed, size + 1)
        except zlib.error as exc:
            raise FrameError(f"a frame is not zlib data: {exc}") from None
        if len(text) != size or not inflater.eof or inflater.unconsumed_tail:
            raise FrameError("a frame's text is not as long as its header says")
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("a frame's text is not UTF-8") from None
        yield Frame(stream.decode("ascii"), size, packed)


def _read_exactly(read: Callable[[int], bytes], n: int, allow_eof: bool = False
                  ) -> bytes | None:
    parts = []
    left = n
    while left:
        data = read(left)
        if not data:
            if allow_eof and left == n:
                return None
            raise FrameError("the log body ends inside a frame")
        parts.append(data)
        left -= len(data)
    return b"".join(parts)
