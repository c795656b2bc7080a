"""Run Buildbot 4's ``biglog`` build (one step printing N MiB) and watch it, for the log
ingest and log download figures."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

import bb4


def program_output(mib: int) -> bytes:
    """What the ``biglog`` step prints (the program in bb4.BIG_LOG_PROGRAM, run here)."""
    line = b"%08d compiling src/module_%04d.c: cc -O2 -Wall -c -o build/module.o ok\n"
    total, n, parts = mib * 1024 * 1024, 0, []
    while total > 0:
        chunk = b"".join(line % (n + i, (n + i) % 10000) for i in range(1000))[:total]
        parts.append(chunk)
        total -= len(chunk)
        n += 1000
    return b"".join(parts)


def holds_output(raw: bytes, expected: bytes) -> bool:
    """Whether Buildbot's raw stdio log holds the program's output byte for byte. The raw
    log also has the step's header lines (the command before, the exit code and elapsed
    time after), and an unterminated last line comes out after them, as its own line."""
    head, _, tail = expected.rpartition(b"\n")
    return head + b"\n" in raw and (not tail or b"\n" + tail + b"\n" in raw
                                     or raw.endswith(b"\n" + tail))


@dataclass
class Run:
    seconds: float  # step seen started -> seen complete
    logid: int
    num_lines: int
    results: int


def run_biglog(master: bb4.Master, interval: float = 0.02, timeout: float = 1800) -> Run:
    """Force ``biglog`` and poll the database (read-only, every ``interval`` s) for its
    step's start and end: the step's own timestamps are whole seconds."""
    _bsid, brid = master.force("biglog")
    started = finished = None
    deadline = time.monotonic() + timeout
    with master.db() as conn:
        while finished is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the biglog build did not finish")
            master.procs.check_alive()
            try:
                row = conn.execute(
                    "SELECT s.id, s.started_at, s.complete_at, s.results FROM steps s JOIN "
                    "builds b ON b.id = s.buildid WHERE b.buildrequestid = ? AND "
                    "s.name = 'print'", (brid,)).fetchone()
            except sqlite3.OperationalError:
                row = None
            now = time.perf_counter()
            if row and row[1] is not None and started is None:
                started = now
            if row and row[2] is not None:
                finished = now
                stepid, results = row[0], row[3]
                break
            time.sleep(interval)
        logid, num_lines = conn.execute("SELECT id, num_lines FROM logs WHERE stepid = ? AND "
                                        "slug = 'stdio'", (stepid,)).fetchone()
    assert started is not None
    return Run(finished - started, logid, num_lines, results)
