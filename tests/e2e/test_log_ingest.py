"""A step printing 50 MiB through a real worker: the stored log and its download are the
bytes the command printed, stdout and stderr in their order, whatever the worker batched
and compressed on the way."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
import requests
import sqlalchemy as sa

from bbweb.db.schema import builds, log_chunks, logs, steps
from bbweb.engine.force import force_build
from bbweb.engine.logs import MAX_CHUNK_BYTES, iter_chunks
from tests.e2e.conftest import start_live_master, stop_live_master, wait_for

MIB = 1024 * 1024
SIZE = 50 * MIB

# 50 MiB on stdout (numbered lines with multi-byte characters, some lines longer than a
# stored chunk), with a few lines on stderr between blocks.
PRINTER = r"""
import os, sys
total = int(sys.argv[1])
block = "".join("%07d façade ✓ línea %d %s\n" % (i, i % 97, "x" * (i % 61))
                for i in range(9000)).encode()
long_line = ("€" * 100000 + "\n").encode()
done = n = 0
while done < total:
    data = (block if n % 5 else long_line + block)[:total - done]
    os.write(1, data)
    done += len(data)
    if n % 7 == 3:
        os.write(2, b"warning: block %d\n" % n)
    n += 1
"""

CFG = r"""
from bbweb.config import *
import sys
c = BuildmasterConfig = {}
c['title'] = 'ingest'
c['buildbotURL'] = 'http://127.0.0.1:PORT/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('w1', 'pw1')]
f = BuildFactory([ShellCommand(name='print', command=[sys.executable, '-c', PRINTER,
                                                      str(SIZE)])])
c['builders'] = [BuilderConfig(name='big', slavenames=['w1'], factory=f)]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['big'])]
c['status'] = [WebStatus(http_port=PORT)]
""".replace("PRINTER", repr(PRINTER)).replace("SIZE", str(SIZE))


@pytest.fixture(scope="module")
def live(tmp_path_factory, e2e_db_url):  # type: ignore[no-untyped-def]
    master = start_live_master(tmp_path_factory.mktemp("ingest") / "master", CFG, e2e_db_url)
    master.start_worker("w1", "pw1")
    try:
        yield master
    finally:
        stop_live_master(master)


def test_a_50_mib_log_is_stored_and_served_byte_identical(live):
    printed = subprocess.run([sys.executable, "-c", PRINTER, str(SIZE)],
                             capture_output=True, check=True)
    assert len(printed.stdout) == SIZE
    with live.db.write() as conn:
        force_build(conn, live.config, ["big"], reason="ingest", owner="test",
                    scheduler="force")

    def finished():  # type: ignore[no-untyped-def]
        with live.db.read() as conn:
            return conn.execute(sa.select(builds).where(builds.c.finished_at.isnot(None))
                                ).first()

    build = wait_for(finished, 300, what="the 50 MiB build to finish")
    assert build.results == 0
    with live.db.read() as conn:
        step = conn.execute(sa.select(steps).where(steps.c.buildid == build.id)).one()
        log = conn.execute(sa.select(logs).where(logs.c.stepid == step.id,
                                                 logs.c.name == "stdio")).one()
        sizes = conn.execute(sa.select(log_chunks.c.stream, log_chunks.c.compressed)
                             .where(log_chunks.c.logid == log.id)).all()
        out = hashlib.sha256()
        stdout_bytes = 0
        stderr = []
        for stream, text in iter_chunks(conn, log.id):
            if stream == "o":
                data = text.encode()
                out.update(data)
                stdout_bytes += len(data)
            elif stream == "e":
                stderr.append(text)
    assert stdout_bytes == SIZE
    assert out.hexdigest() == hashlib.sha256(printed.stdout).hexdigest()
    assert "".join(stderr).encode() == printed.stderr
    assert printed.stderr.startswith(b"warning: block 3\nwarning: block 10\n")
    assert log.complete and log.num_chunks == len(sizes)
    assert len(sizes) >= SIZE // MAX_CHUNK_BYTES  # stored in bounded chunks, compressed
    assert sum(1 for s in sizes if s.compressed) >= SIZE // MAX_CHUNK_BYTES - 1

    # the download (stdout and stderr, as printed) streams back the same text
    url = f"{live.url}/builders/big/builds/0/steps/print/logs/stdio/text"
    digest = hashlib.sha256()
    with requests.get(url, stream=True, timeout=120) as resp:
        assert resp.status_code == 200
        for piece in resp.iter_content(1 << 20):
            digest.update(piece)
    with live.db.read() as conn:
        served = hashlib.sha256("".join(text for stream, text in iter_chunks(conn, log.id)
                                        if stream in "oe").encode())
    assert digest.hexdigest() == served.hexdigest()
