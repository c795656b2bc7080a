"""Log storage: chunks appended as output arrives, compressed when worth it.

A log is a sequence of (stream, text) chunks: ``o`` stdout, ``e`` stderr, ``h`` header.
Chunks larger than ``logCompressionLimit`` bytes are zlib-compressed; any web host can
serve any log because everything lives in the database.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.connection import inserted_id
from bbweb.db.schema import log_chunks, logs

STREAMS = ("o", "e", "h")
MAX_CHUNK_BYTES = 256 * 1024


def create_log(conn: Connection, stepid: int, name: str) -> int:
    return inserted_id(conn.execute(logs.insert().values(stepid=stepid, name=name)))


def get_or_create_log(conn: Connection, stepid: int, name: str) -> int:
    row = conn.execute(sa.select(logs.c.id).where(logs.c.stepid == stepid,
                                                  logs.c.name == name)).first()
    return int(row.id) if row else create_log(conn, stepid, name)


def _coalesce(chunks: Iterable[tuple[str, str | bytes]]) -> list[tuple[str, bytes]]:
    """Merge neighbours from the same stream; bytes that are not UTF-8 become U+FFFD."""
    out: list[tuple[str, bytes]] = []
    for stream, text in chunks:
        if stream not in STREAMS:
            raise ValueError(f"unknown log stream {stream!r} (expected o, e or h)")
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        if not isinstance(text, str):
            raise ValueError("log text must be a string")
        data = text.encode("utf-8", errors="replace")
        if not data:
            continue
        if out and out[-1][0] == stream and len(out[-1][1]) + len(data) <= MAX_CHUNK_BYTES:
            out[-1] = (stream, out[-1][1] + data)
        else:
            out.append((stream, data))
    return out


def append_chunks(conn: Connection, logid: int, chunks: Iterable[tuple[str, str | bytes]],
                  compression_limit: int = 4096) -> int:
    """Append chunks to a log; returns how many bytes were stored (uncompressed)."""
    merged = _coalesce(chunks)
    if not merged:
        return 0
    row = conn.execute(sa.select(logs.c.num_chunks).where(logs.c.id == logid)).one()
    seq = row.num_chunks
    values = []
    total = 0
    for stream, data in merged:
        total += len(data)
        if compression_limit and len(data) > compression_limit:
            values.append({"logid": logid, "seq": seq, "stream": stream, "compressed": 1,
                           "content": zlib.compress(data, 6)})
        else:
            values.append({"logid": logid, "seq": seq, "stream": stream, "compressed": 0,
                           "content": data})
        seq += 1
    conn.execute(log_chunks.insert(), values)
    conn.execute(logs.update().where(logs.c.id == logid).values(
        num_chunks=seq, num_bytes=logs.c.num_bytes + total))
    return total


def _decode(compressed: int, content: bytes) -> str:
    data = zlib.decompress(content) if compressed == 1 else bytes(content)
    return data.decode("utf-8", errors="replace")


def iter_chunks(conn: Connection, logid: int, batch: int = 200) -> Iterator[tuple[str, str]]:
    """(stream, text) in order, fetched in batches so a huge log never sits in memory."""
    seq = -1
    while True:
        rows = conn.execute(sa.select(log_chunks.c.seq, log_chunks.c.stream,
                                      log_chunks.c.compressed, log_chunks.c.content)
                            .where(log_chunks.c.logid == logid, log_chunks.c.seq > seq)
                            .order_by(log_chunks.c.seq).limit(batch)).all()
        if not rows:
            return
        for r in rows:
            yield r.stream, _decode(r.compressed, r.content)
        seq = rows[-1].seq


def read_text(conn: Connection, logid: int, streams: str = "oeh") -> str:
    """The whole log as one string (only the given streams)."""
    return "".join(text for stream, text in iter_chunks(conn, logid) if stream in streams)


def finish_log(conn: Connection, logid: int) -> None:
    conn.execute(logs.update().where(logs.c.id == logid).values(complete=True))
