"""Step output sent compressed (bbweb.worker.logframes) to ``/api/worker/steps/N/log``: stored
as it came, acted on once per Idempotency-Key, and a bad body refused whole."""

from __future__ import annotations

import struct
import zlib

import pytest
import sqlalchemy as sa

from bbweb.db.schema import log_chunks, logs
from bbweb.engine.logs import read_text
from bbweb.worker import logframes
from tests.worker.test_protocol import S1, add_changes, new_key, post, start


def send(client, stepid, body: bytes, key=None, log="stdio"):  # type: ignore[no-untyped-def]
    headers = {"Idempotency-Key": key or new_key(), "Content-Type": logframes.MEDIA_TYPE}
    return client.post(f"/api/worker/steps/{stepid}/log?log={log}", data=body, auth=S1,
                       headers=headers)


def running_step(master, client) -> int:  # type: ignore[no-untyped-def]
    add_changes(master)
    build = start(client, "s", 1)
    resp = post(client, f"/builds/{build['id']}/next_step", key=new_key())
    return int(resp.get_json()["step"]["id"])


def stored(master, stepid, name="stdio"):  # type: ignore[no-untyped-def]
    with master.db.read() as conn:
        log = conn.execute(sa.select(logs).where(logs.c.stepid == stepid,
                                                 logs.c.name == name)).first()
        if log is None:
            return None, []
        rows = conn.execute(sa.select(log_chunks).where(log_chunks.c.logid == log.id)
                            .order_by(log_chunks.c.seq)).all()
        return log, rows


def frame(stream: bytes, text: bytes, size: int | None = None,
          packed: bytes | None = None) -> bytes:
    packed = zlib.compress(text, 1) if packed is None else packed
    return struct.pack(">cII", stream, len(text) if size is None else size,
                       len(packed)) + packed


def test_frames_are_stored_as_sent_and_read_back_as_text(master, client):
    stepid = running_step(master, client)
    big = ("ünïcödé line\n" * 20000).encode()  # 340,000 bytes: cut into two frames
    pieces = [("h", "make all\n"), ("o", big.decode()), ("e", "warning: x\n"),
              ("o", "done\n")]
    chunks = list(logframes.chunk(pieces))
    assert [s for s, _ in chunks] == ["h", "o", "o", "e", "o"]
    body = logframes.encode(chunks)
    resp = send(client, stepid, body)
    assert resp.status_code == 200, resp.data
    assert resp.get_json() == {"stop": False}
    log, rows = stored(master, stepid)
    assert log.num_chunks == 5 and log.num_bytes == sum(len(d) for _, d in chunks)
    # chunks above logCompressionLimit (4096) keep the worker's compressed bytes; small
    # ones are stored as plain text
    assert [(r.stream, r.compressed) for r in rows] == [("h", 0), ("o", 1), ("o", 1),
                                                         ("e", 0), ("o", 0)]
    assert rows[1].content == zlib.compress(chunks[1][1], logframes.LEVEL)
    with master.db.read() as conn:
        assert read_text(conn, log.id) == "".join(t for _, t in pieces)
        assert read_text(conn, log.id, streams="e") == "warning: x\n"


def test_a_repeated_request_is_stored_once(master, client):
    stepid = running_step(master, client)
    body = logframes.encode(logframes.chunk([("o", "once\n")]))
    key = new_key()
    for _ in range(3):
        assert send(client, stepid, body, key=key).status_code == 200
    log, rows = stored(master, stepid)
    assert len(rows) == 1 and log.num_bytes == 5


def test_frames_and_json_append_to_the_same_log(master, client):
    stepid = running_step(master, client)
    assert send(client, stepid, logframes.encode([("o", b"one\n")])).status_code == 200
    assert post(client, f"/steps/{stepid}/log", {"chunks": [["o", "two\n"]]},
                key=new_key()).status_code == 200
    assert send(client, stepid, logframes.encode([("o", b"three\n")])).status_code == 200
    log, _rows = stored(master, stepid)
    with master.db.read() as conn:
        assert read_text(conn, log.id) == "one\ntwo\nthree\n"


@pytest.mark.parametrize("body, message", [
    (frame(b"o", b"fine\n") + frame(b"x", b"bad stream\n"), b"unknown log stream"),
    (frame(b"o", b"fine\n") + frame(b"o", b"abc", packed=b"not zlib at all"), b"not zlib"),
    (frame(b"o", b"abc", size=4), b"not as long"),
    (frame(b"o", b"abcdef", size=3), b"not as long"),
    (frame(b"o", b"bad \xff bytes\n"), b"not UTF-8"),
    (frame(b"o", b"x" * 10)[:-3], b"ends inside a frame"),
    (frame(b"o", b"x")[:5], b"ends inside a frame"),
    (frame(b"o", b"", size=0), b"a frame of 0 bytes"),
    (frame(b"o", b"y" * (logframes.MAX_CHUNK_BYTES + 1)), b"a frame of 262145 bytes"),
])
def test_a_bad_body_is_refused_whole(master, client, body, message):
    stepid = running_step(master, client)
    resp = send(client, stepid, frame(b"h", b"header\n") + body)
    assert resp.status_code == 400
    assert message in resp.data
    log, rows = stored(master, stepid)
    assert rows == []  # not even the good frame before the bad one


def test_a_frame_for_a_step_not_ours_is_404(master, client):
    stepid = running_step(master, client)
    resp = client.post(f"/api/worker/steps/{stepid + 100}/log", auth=S1,
                       data=logframes.encode([("o", b"x\n")]),
                       headers={"Content-Type": logframes.MEDIA_TYPE,
                                "Idempotency-Key": new_key()})
    assert resp.status_code == 404


def test_chunking_never_cuts_a_character_and_keeps_order():
    text = "a€😀" * 50000
    pieces = [("o", text), ("o", "tail\n"), ("e", "é" * 10), ("o", "x")]
    for limit in (5, 7, 64, 4096, logframes.MAX_CHUNK_BYTES):
        chunks = list(logframes.chunk(pieces, limit))
        assert all(0 < len(data) <= limit for _, data in chunks)
        assert all(data.decode("utf-8") for _, data in chunks)  # each is whole UTF-8
        by_stream = {s: "".join(d.decode() for st, d in chunks if st == s) for s in "oe"}
        assert by_stream == {"o": text + "tail\nx", "e": "é" * 10}
        if limit >= 4096:  # neighbours of one stream are joined up to the limit
            assert [s for s, _ in chunks][-3:] == ["o", "e", "o"]
            assert len(chunks) == -(-len((text + "tail\n").encode()) // limit) + 2
