"""A step printing 50 MiB through a real worker: the stored log and its download are the
bytes the command printed, stdout and stderr in their order, whatever the worker batched
and compressed on the way. A step printing faster than a paused master can store: the
command waits, the worker's memory stays bounded, and nothing is lost."""

from __future__ import annotations

import hashlib
import os
import signal
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

# 64 MiB of lines zlib cannot shrink much (a block of random base64 larger than its window);
# the program writes its pid to printer.pid in its working directory first.
FLOOD = r"""
import base64, os, random, sys
total = int(sys.argv[1])
with open("printer.pid", "w") as f:
    f.write(str(os.getpid()))
block = base64.encodebytes(random.Random(7).randbytes(768 * 1024))
out = sys.stdout.buffer
done = n = 0
while done < total:
    data = (b"== block %d ==\n" % n + block)[:total - done]
    out.write(data)
    done += len(data)
    n += 1
out.flush()
"""
FLOOD_SIZE = 64 * MIB

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
flood = BuildFactory([ShellCommand(name='flood', command=[sys.executable, '-c', FLOOD,
                                                          str(FLOOD_SIZE)])])
c['builders'] = [BuilderConfig(name='big', slavenames=['w1'], factory=f),
                 BuilderConfig(name='flood', slavenames=['w1'], factory=flood)]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['big', 'flood'])]
c['status'] = [WebStatus(http_port=PORT)]
""".replace("PRINTER", repr(PRINTER)).replace("FLOOD_SIZE", str(FLOOD_SIZE)).replace(
    "FLOOD", repr(FLOOD)).replace("SIZE", str(SIZE))


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


def _status(pid: int, field: str) -> int:
    """A /proc/PID/status figure in KiB (0 once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _blocked_on_pipe(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return "pipe_write" in f.read()
    except OSError:
        return False


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_a_command_printing_faster_than_a_paused_master_waits_for_it(live):
    worker = live.procs["worker-w1"].pid
    idle_rss = _status(worker, "VmRSS")
    with live.db.write() as conn:
        force_build(conn, live.config, ["flood"], reason="flood", owner="test",
                    scheduler="force")
    workers = live.basedir / "workers" / "w1"
    pidfile = wait_for(lambda: next(iter(workers.glob("**/printer.pid")), None), 120,
                       what="the flood step to start")
    printer = int(wait_for(lambda: pidfile.read_text(), 10, what="the printer's pid"))
    peak = [idle_rss]

    def sample() -> None:
        peak[0] = max(peak[0], _status(worker, "VmRSS"))

    web = live.procs["web"].pid
    os.killpg(web, signal.SIGSTOP)  # the master stores nothing while it is stopped
    try:
        # Settled: the printer is blocked writing to its pipe, and the worker has used no
        # CPU for several polls in a row (a worker still reading and compressing would).
        still = [0, -1]

        def settled() -> bool:
            sample()
            if _status(printer, "VmRSS") == 0:
                raise AssertionError("the printer finished while the master was stopped: "
                                     "the worker read all of its output")
            ticks = _cpu_ticks(worker)
            quiet = _blocked_on_pipe(printer) and ticks == still[1]
            still[:] = [still[0] + 1 if quiet else 0, ticks]
            return still[0] >= 5

        wait_for(settled, 120, what="the printer to wait for a worker that waits")
    finally:
        os.killpg(web, signal.SIGCONT)

    def finished():  # type: ignore[no-untyped-def]
        sample()
        with live.db.read() as conn:
            return conn.execute(sa.select(builds).join(
                steps, steps.c.buildid == builds.c.id).where(
                steps.c.name == "flood", builds.c.finished_at.isnot(None))).first()

    build = wait_for(finished, 300, what="the flood build to finish")
    assert build.results == 0
    # The worker held its bound (8 MiB of compressed output), a request's body and what a
    # first build costs a fresh worker (about 25 MiB: its reading thread's allocations),
    # not the 50 MiB that this output compresses to on top of that.
    growth = (peak[0] - idle_rss) / 1024
    assert growth < 48, f"the worker grew by {growth:.1f} MiB"
    printed = subprocess.run([sys.executable, "-c", FLOOD, str(FLOOD_SIZE)],
                             cwd=pidfile.parent, capture_output=True, check=True).stdout
    with live.db.read() as conn:
        step = conn.execute(sa.select(steps).where(steps.c.buildid == build.id)).one()
        log = conn.execute(sa.select(logs).where(logs.c.stepid == step.id,
                                                 logs.c.name == "stdio")).one()
        stored = hashlib.sha256()
        for stream, text in iter_chunks(conn, log.id):
            if stream == "o":
                stored.update(text.encode())
    assert stored.hexdigest() == hashlib.sha256(printed).hexdigest()
