"""Log storage: chunks appended as output arrives, compressed when worth it.

A log is a sequence of (stream, text) chunks: ``o`` stdout, ``e`` stderr, ``h`` header.
Chunks larger than ``logCompressionLimit`` bytes are zlib-compressed; any web host can
serve any log because everything lives in the database. zlib's fastest level is used: on
build output it saves nearly as much as the default level at several times the speed, and
a log arrives as fast as a step prints it. Workers send their output already compressed
(:mod:`bbweb.worker.logframes`); :func:`append_frames` stores those bytes as they came.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.connection import inserted_id
from bbweb.db.schema import log_chunks, logs
from bbweb.worker import logframes

STREAMS = ("o", "e", "h")
MAX_CHUNK_BYTES = logframes.MAX_CHUNK_BYTES
COMPRESSION_LEVEL = logframes.LEVEL

_NUM_CHUNKS = sa.select(logs.c.num_chunks).where(logs.c.id == sa.bindparam("logid"))
_INSERT_CHUNKS = log_chunks.insert()
_GROW = (logs.update().where(logs.c.id == sa.bindparam("logid"))
         .values(num_chunks=sa.bindparam("num_chunks"),
                 num_bytes=logs.c.num_bytes + sa.bindparam("added", type_=sa.Integer)))


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
    seq = conn.execute(_NUM_CHUNKS, {"logid": logid}).scalar_one()
    values = []
    total = 0
    for stream, data in merged:
        total += len(data)
        if compression_limit and len(data) > compression_limit:
            values.append({"logid": logid, "seq": seq, "stream": stream, "compressed": 1,
                           "content": zlib.compress(data, COMPRESSION_LEVEL)})
        else:
            values.append({"logid": logid, "seq": seq, "stream": stream, "compressed": 0,
                           "content": data})
        seq += 1
    conn.execute(_INSERT_CHUNKS, values)
    conn.execute(_GROW, {"logid": logid, "num_chunks": seq, "added": total})
    return total


def append_frames(conn: Connection, logid: int, frames: list[logframes.Frame],
                  compression_limit: int = 4096) -> int:
    """Append chunks a worker sent compressed (already checked by
    :func:`bbweb.worker.logframes.decode`): stored as they came, except that a chunk of
    at most ``compression_limit`` bytes (or any, with compression off) is stored as
    plain text, as :func:`append_chunks` would. Returns the bytes of text stored."""
    if not frames:
        return 0
    seq = conn.execute(_NUM_CHUNKS, {"logid": logid}).scalar_one()
    values = []
    total = 0
    for frame in frames:
        total += frame.size
        if compression_limit and frame.size > compression_limit:
            values.append({"logid": logid, "seq": seq, "stream": frame.stream,
                           "compressed": 1, "content": frame.compressed})
        else:
            values.append({"logid": logid, "seq": seq, "stream": frame.stream,
                           "compressed": 0, "content": zlib.decompress(frame.compressed)})
        seq += 1
    conn.execute(_INSERT_CHUNKS, values)
    conn.execute(_GROW, {"logid": logid, "num_chunks": seq, "added": total})
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
