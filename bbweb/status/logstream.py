"""Reading a log for the web in bounded pieces, and turning its chunks into HTML.

A log can be a gigabyte, so nothing here reads a whole log: chunks are fetched by sequence
number, at most :data:`BATCH` rows per query, each batch in its own short read transaction
(a long-lived read would pin a pooled connection, hold back SQLite's WAL checkpoints and
PostgreSQL's vacuum for as long as a slow client downloads). Memory use is bounded by one
batch whatever the log's size.

Chunks are ``(stream, text)`` with stream ``o`` (stdout), ``e`` (stderr) or ``h`` (header);
text stored before the engine replaced invalid UTF-8 is decoded here with U+FFFD.

ANSI colours: each chunk is split on CSI sequences (``ESC [ params intermediates final``).
An SGR sequence (final ``m``) changes the classes of the text after it, as a terminal
would: ``ansi1`` bold, ``ansi3`` italic, ``ansi4`` underline, ``ansi30``–``ansi37`` /
``ansi90``–``ansi97`` foreground, ``ansi40``–``ansi47`` / ``ansi100``–``ansi107``
background; ``0`` (or no parameter) resets, ``22``/``23``/``24``/``39``/``49`` reset their
part, 256-colour and RGB forms are consumed without a class. The state starts afresh with
every chunk, so a chunk renders the same whether it is streamed with the page or fetched
later by the live-follow script. Other CSI sequences (cursor movement, erase) are dropped;
an ``ESC`` that starts no complete CSI sequence is kept as it is. Everything is escaped.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from markupsafe import escape
from sqlalchemy.engine import Connection

from bbweb.db.connection import Database
from bbweb.db.schema import log_chunks, logs

BATCH = 64
"""Chunks per query. A chunk holds at most 256 KiB (``engine.logs.MAX_CHUNK_BYTES``)."""

FOLLOW_POLL_SECONDS = 0.5
"""How often a following text view asks the database for new chunks."""

FOLLOW_MAX_SECONDS = 30 * 60
"""How long a following text view stays open at most before it ends the response."""

WRITE_CHARS = 64 * 1024
"""Small chunks are joined into writes of about this many characters (one write per
one-line chunk would make a log of short lines slow to serve)."""

CHUNKS_MAX_BYTES = 1024 * 1024
"""How much text one answer of the live-follow JSON endpoint carries at most (at least one
chunk, however big)."""

# a log's tail (the feeds show the end of each failed step's logs)
TAIL_LINES = 30
TAIL_MAX_CHUNKS = 8  # chunks read backwards from a log's end, at most
TAIL_MAX_CHARS = 64 * 1024  # of a log tail, at most

STREAM_NAMES = {"o": "stdout", "e": "stderr", "h": "header"}
# the CSS class of each stream's spans: ``header`` is the page header bar's class in
# default.css, so header chunks use ``header-chunk``
STREAM_CLASSES = {"o": "stdout", "e": "stderr", "h": "header-chunk"}


@dataclass
class Chunk:
    seq: int
    stream: str  # "o" | "e" | "h"
    text: str


@dataclass
class LogState:
    num_chunks: int
    num_bytes: int
    complete: bool


def _decode(compressed: int, content: bytes | memoryview) -> str:
    data = bytes(content)
    if compressed == 1:
        data = zlib.decompress(data)
    return data.decode("utf-8", errors="replace")


def log_state(conn: Connection, logid: int) -> LogState | None:
    row = conn.execute(sa.select(logs.c.num_chunks, logs.c.num_bytes, logs.c.complete)
                       .where(logs.c.id == logid)).first()
    if row is None:
        return None
    return LogState(int(row.num_chunks), int(row.num_bytes), bool(row.complete))


def _chunk_query(logid: int, after: int, limit: int, streams: str) -> sa.Select[Any]:
    query = (sa.select(log_chunks.c.seq, log_chunks.c.stream, log_chunks.c.compressed,
                       log_chunks.c.content)
             .where(log_chunks.c.logid == logid, log_chunks.c.seq > after)
             .order_by(log_chunks.c.seq).limit(limit))
    if streams != "oeh":
        query = query.where(log_chunks.c.stream.in_(list(streams)))
    return query


def fetch_chunks(conn: Connection, logid: int, after: int = -1, limit: int = BATCH,
                 streams: str = "oeh") -> list[Chunk]:
    """Up to ``limit`` chunks with ``seq > after``, in order (one indexed range query)."""
    return [Chunk(int(r.seq), r.stream, _decode(r.compressed, r.content))
            for r in conn.execute(_chunk_query(logid, after, limit, streams))]


def log_tail(conn: Connection, logid: int, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log, read backwards a chunk at a time (at most
    :data:`TAIL_MAX_CHUNKS` chunks and :data:`TAIL_MAX_CHARS` characters)."""
    rows = conn.execute(
        sa.select(log_chunks.c.compressed, log_chunks.c.content)
        .where(log_chunks.c.logid == logid)
        .order_by(log_chunks.c.seq.desc()).limit(TAIL_MAX_CHUNKS)).all()
    pieces: list[str] = []
    newlines = 0
    size = 0
    for r in rows:
        text = _decode(r.compressed, r.content)
        pieces.append(text)
        newlines += text.count("\n")
        size += len(text)
        if newlines > lines or size >= TAIL_MAX_CHARS:
            break
    text = "".join(reversed(pieces))[-TAIL_MAX_CHARS:]
    return "\n".join(text.rstrip("\n").split("\n")[-lines:])


def iter_chunks(db: Database, logid: int, after: int = -1, streams: str = "oeh",
                batch: int = BATCH) -> Iterator[Chunk]:
    """Every chunk after ``after`` that exists now, one batch per read transaction. Rows
    are decompressed one at a time, so memory holds one batch as stored (compressed)
    plus one chunk's text."""
    while True:
        with db.read() as conn:
            rows = list(conn.execute(_chunk_query(logid, after, batch, streams)))
        count = len(rows)
        rows.reverse()
        while rows:
            r = rows.pop()  # let each row's stored bytes go as soon as it is served
            after = int(r.seq)
            yield Chunk(after, r.stream, _decode(r.compressed, r.content))
            del r
        if count < batch:
            return


def tail_text(db: Database, logid: int, limit: int, streams: str = "oe",
              batch: int = BATCH) -> tuple[str, bool]:
    """The last ``limit`` characters of a log's ``streams``, and whether earlier text was
    left out. Chunks are read newest first, a batch per read transaction, and only until
    ``limit`` characters are held, so a gigabyte log costs ``limit`` of memory."""

    def older(before: int | None, count: int) -> list[Any]:
        query = (sa.select(log_chunks.c.seq, log_chunks.c.compressed, log_chunks.c.content)
                 .where(log_chunks.c.logid == logid, log_chunks.c.stream.in_(list(streams)))
                 .order_by(log_chunks.c.seq.desc()).limit(count))
        if before is not None:
            query = query.where(log_chunks.c.seq < before)
        with db.read() as conn:
            return list(conn.execute(query).all())

    pieces: list[str] = []
    held = 0
    before: int | None = None
    while held < limit:
        rows = older(before, batch)
        for r in rows:
            pieces.append(_decode(r.compressed, r.content))
            held += len(pieces[-1])
            before = int(r.seq)
            if held >= limit:
                break
        if len(rows) < batch and held < limit:
            return "".join(reversed(pieces)), False
    text = "".join(reversed(pieces))
    if len(text) > limit:
        return text[len(text) - limit:], True
    return text, bool(older(before, 1))


def follow_chunks(db: Database, logid: int, streams: str = "oeh", after: int = -1,
                  poll: float | None = None, max_seconds: float | None = None,
                  sleep: Callable[[float], None] = time.sleep) -> Iterator[Chunk | None]:
    """Every chunk of the log, then new ones as they are written, until the log completes
    or ``max_seconds`` (default :data:`FOLLOW_MAX_SECONDS`) pass. The database is asked
    every ``poll`` seconds (default :data:`FOLLOW_POLL_SECONDS`); ``None`` is yielded
    before each wait, so that a writer can flush what it holds."""
    poll = FOLLOW_POLL_SECONDS if poll is None else poll
    max_seconds = FOLLOW_MAX_SECONDS if max_seconds is None else max_seconds
    deadline = time.monotonic() + max_seconds
    while True:
        # completeness first: when it says complete, every chunk is already committed
        with db.read() as conn:
            state = log_state(conn, logid)
        for chunk in iter_chunks(db, logid, after, streams):
            after = chunk.seq
            yield chunk
        if state is None or state.complete or time.monotonic() >= deadline:
            return
        yield None
        sleep(poll)


def coalesce(pieces: Iterable[str | None], limit: int | None = None) -> Iterator[str]:
    """Join small pieces into writes of about ``limit`` characters (default
    :data:`WRITE_CHARS`); a ``None`` piece writes out what is held at once."""
    limit = WRITE_CHARS if limit is None else limit
    held: list[str] = []
    size = 0
    for piece in pieces:
        if piece is None:
            if held:
                yield "".join(held)
                held, size = [], 0
            continue
        if size + len(piece) > limit and held:
            yield "".join(held)
            held, size = [], 0
        if len(piece) >= limit:
            yield piece
            continue
        held.append(piece)
        size += len(piece)
    if held:
        yield "".join(held)


def new_chunks(conn: Connection, logid: int, after: int,
               max_bytes: int | None = None) -> tuple[list[Chunk], bool, bool]:
    """For the live-follow endpoint: ``(chunks, complete, more)``: the chunks after
    ``after`` (at most ``max_bytes`` of text, but at least one chunk), whether the reader
    has now seen the whole of a finished log, and whether more chunks are waiting."""
    max_bytes = CHUNKS_MAX_BYTES if max_bytes is None else max_bytes
    state = log_state(conn, logid)  # read before the chunks, as in follow_chunks
    out: list[Chunk] = []
    size = 0
    while True:
        rows = fetch_chunks(conn, logid, after, BATCH)
        for chunk in rows:
            if out and size + len(chunk.text) > max_bytes:
                return out, False, True
            out.append(chunk)
            size += len(chunk.text)
            after = chunk.seq
        if len(rows) < BATCH:
            return out, bool(state and state.complete), False


# -- ANSI → classes ---------------------------------------------------------------------------

# a complete CSI sequence: parameter bytes, intermediate bytes, one final byte
_CSI = re.compile(r"\x1b\[([0-?]*)([ -/]*)([@-~])")
_SGR_PARAMS = re.compile(r"[0-9;]*")

_ATTR_OFF = {22: (1, 2), 23: (3,), 24: (4,), 25: (5, 6), 27: (7,), 28: (8,), 29: (9,)}


class _Sgr:
    """The graphic rendition state inside one chunk."""

    def __init__(self) -> None:
        self.attrs: set[int] = set()
        self.fg: int | None = None
        self.bg: int | None = None

    def apply(self, params: str) -> None:
        codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
        i = 0
        while i < len(codes):
            code = codes[i]
            i += 1
            if code == 0:
                self.attrs.clear()
                self.fg = self.bg = None
            elif code in (38, 48):  # 38;5;N or 38;2;R;G;B: no class for these
                if i < len(codes) and codes[i] == 5:
                    i += 2
                elif i < len(codes) and codes[i] == 2:
                    i += 4
            elif 30 <= code <= 37 or 90 <= code <= 97:
                self.fg = code
            elif code == 39:
                self.fg = None
            elif 40 <= code <= 47 or 100 <= code <= 107:
                self.bg = code
            elif code == 49:
                self.bg = None
            elif code in _ATTR_OFF:
                self.attrs.difference_update(_ATTR_OFF[code])
            else:
                self.attrs.add(code)

    def classes(self) -> str:
        codes = sorted(self.attrs) + [c for c in (self.fg, self.bg) if c is not None]
        return " ".join(f"ansi{c}" for c in codes)


def chunk_spans(stream: str, text: str) -> list[tuple[str, str]]:
    """``[(css classes, text)]`` for one chunk: the stream's class, plus ``ansiN`` classes
    where SGR sequences set them; empty pieces are left out."""
    base = STREAM_CLASSES.get(stream, "stdout")
    if "\x1b" not in text:
        return [(base, text)] if text else []
    out: list[tuple[str, str]] = []
    sgr = _Sgr()
    classes = base
    pos = 0
    for m in _CSI.finditer(text):
        if m.start() > pos:
            out.append((classes, text[pos:m.start()]))
        pos = m.end()
        params, intermediates, final = m.groups()
        if final == "m" and not intermediates and _SGR_PARAMS.fullmatch(params):
            sgr.apply(params)
            extra = sgr.classes()
            classes = f"{base} {extra}" if extra else base
        # any other CSI sequence (cursor movement, erase line, private modes) is dropped
    if pos < len(text):
        out.append((classes, text[pos:]))
    return out


def chunk_html(stream: str, text: str) -> str:
    """One chunk as escaped ``<span class=…>`` markup."""
    return "".join(f'<span class="{cls}">{escape(piece)}</span>'
                   for cls, piece in chunk_spans(stream, text))


__all__ = ["BATCH", "CHUNKS_MAX_BYTES", "FOLLOW_MAX_SECONDS", "FOLLOW_POLL_SECONDS",
           "STREAM_CLASSES", "STREAM_NAMES", "WRITE_CHARS", "Chunk", "LogState", "chunk_html",
           "chunk_spans", "coalesce", "fetch_chunks", "follow_chunks", "iter_chunks", "log_state",
           "new_chunks"]
