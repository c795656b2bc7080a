"""Log ingest: a real step printing ``--mib`` MiB, through a real worker, into the stored log.

A master with one builder ``big`` whose single step runs a small Python program that
prints ``--mib`` MiB (default 50) of build-like lines (numbered, varied, as compressible as
a compiler's output); gunicorn as ``bbweb start`` runs it, the daemon (``bbweb master``) and
one local worker (``bbweb worker``). Once the worker has said hello, the build is forced
and the master processes' resident memory (gunicorn's arbiter and workers, the daemon:
``/proc/PID/status`` VmRSS, every 20 ms) is sampled until the build finishes.

Prints the step's bytes and seconds (the step's ``started_at`` → ``finished_at``, the
master's clock) as MB/s, the master processes' idle RSS and their peak during the ingest
(the growth over idle is the figure that matters), the worker's RSS before and at its peak,
the CPU seconds the master processes and the worker used (also per MiB: a steadier figure
than MB/s on a shared machine), and checks that the stored stdout is byte-identical to what
the program printed (SHA-256 of both). The last line is ``RESULT``
and a JSON object of the figures (``bench/perf.py`` reads it).

    .venv/bin/python bench/log_ingest.py                  # 50 MiB on SQLite
    .venv/bin/python bench/log_ingest.py --mib 200
    .venv/bin/python bench/log_ingest.py --db-url postgresql+psycopg://u:pw@host/db
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from _common import (  # noqa: E402
    BuilderSpec,
    Processes,
    add_common_args,
    banner,
    install_signal_handlers,
    open_master,
    result,
    start_daemon,
    start_web,
    start_worker,
    wait_for,
)

from bbweb.db.schema import builds, logs, slaves, steps  # noqa: E402
from bbweb.engine.force import force_build  # noqa: E402
from bbweb.engine.logs import iter_chunks  # noqa: E402

BUILDER = "big"
WORKER = "ingest-worker"
MIB = 1024 * 1024

# Prints exactly argv[1] bytes: a block of about 1 MiB of numbered, varied lines made once
# (so the step prints far faster than the master stores, and the figure is the master's),
# written again and again after a line that numbers the block.
PRINTER = r"""
import sys
total = int(sys.argv[1])
out = sys.stdout.buffer
block = b"".join(
    b"%08d [%3d%%] compiling src/module%03d/file%04d.c -O2 -Wall -DLEVEL=%d\n"
    % (i, i * 100 // 16000, i % 997, i % 7919, i % 13) for i in range(16000))
done = 0
n = 0
while done < total:
    data = (b"== block %d ==\n" % n + block)[:total - done]
    out.write(data)
    done += len(data)
    n += 1
out.flush()
"""


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of ``pids`` so far (what /proc says)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def master_pids(procs: Processes) -> list[int]:
    """gunicorn's arbiter and its workers, and the daemon."""
    pids = []
    for name in ("web", "daemon"):
        proc = procs.procs.get(name)
        if proc is None:
            continue
        pids.append(proc.pid)
        try:
            children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                      text=True).stdout.split()
        except OSError:
            children = []
        pids += [int(c) for c in children]
    return pids


class RssSampler:
    """The sum of the master processes' RSS every ``interval`` seconds, in a thread."""

    def __init__(self, procs: Processes, pids: list[int] | None = None,
                 interval: float = 0.02) -> None:
        self.pids = master_pids(procs) if pids is None else pids
        self.interval = interval
        self.peak = 0
        self.peak_each: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for pid in self.pids:
                kib = rss_kib(pid)
                total += kib
                self.peak_each[pid] = max(self.peak_each.get(pid, 0), kib)
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def expected_digest(nbytes: int) -> str:
    out = subprocess.run([sys.executable, "-c", PRINTER, str(nbytes)], capture_output=True,
                         check=True).stdout
    return hashlib.sha256(out).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--mib", type=float, default=50.0, help="MiB the step prints (50)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--deadline", type=float, default=600.0,
                        help="seconds to wait for the build (default 600)")
    args = parser.parse_args(argv)
    nbytes = int(args.mib * MIB)
    install_signal_handlers()

    master = open_master(args.basedir, args.db_url, slaves=[WORKER], max_builds=1,
                         builders=[BuilderSpec(BUILDER, [[sys.executable, "-c", PRINTER,
                                                          str(nbytes)]], [WORKER])],
                         reset_db=args.reset_db, kind="ingest", title="bbweb ingest bench")
    try:
        if BUILDER not in master.cfg.builders:
            print(f"{master.basedir} is not a log_ingest master", file=sys.stderr)
            return 2
        banner("log_ingest", basedir=f"{master.basedir}"
               f"{' (temporary)' if master.temporary else ' (kept)'}",
               database=master.db_label, step=f"prints {nbytes} bytes ({args.mib:g} MiB)",
               gunicorn=f"{args.web_workers} processes x 16 threads")
        with Processes(master.basedir) as procs:
            url = start_web(master, procs, workers=args.web_workers)
            start_daemon(master, procs)
            start_worker(master, procs, url, WORKER)

            def connected() -> bool:
                with master.db.read() as conn:
                    return bool(conn.execute(sa.select(slaves.c.connected).where(
                        slaves.c.name == WORKER)).scalar())

            wait_for(connected, 60, "the worker to connect", interval=0.2, procs=procs)
            with RssSampler(procs) as idle_sampler:
                time.sleep(2.0)
            idle = idle_sampler.peak
            with master.db.write() as conn:
                _bsid, brids = force_build(conn, master.cfg, [BUILDER], reason="log ingest",
                                           owner="bench", scheduler="force")
            brid = brids[BUILDER]

            def finished() -> object:
                with master.db.read() as conn:
                    return conn.execute(sa.select(builds.c.id).where(
                        builds.c.buildrequestid == brid,
                        builds.c.finished_at.isnot(None))).scalar()

            t0 = time.perf_counter()
            worker_pid = procs.procs[f"worker-{WORKER}"].pid
            worker_idle = rss_kib(worker_pid)
            with RssSampler(procs) as sampler, RssSampler(procs, [worker_pid]) as wsampler:
                cpu0 = (cpu_seconds(sampler.pids), cpu_seconds([worker_pid]))
                each0 = {pid: cpu_seconds([pid]) for pid in sampler.pids}
                buildid = wait_for(finished, args.deadline, "the build to finish",
                                   interval=0.05, procs=procs)
                cpu1 = (cpu_seconds(sampler.pids), cpu_seconds([worker_pid]))
                cpu_each = {pid: cpu_seconds([pid]) - each0[pid] for pid in sampler.pids}
            wall = time.perf_counter() - t0
            peak_each = {pid: kib for pid, kib in sampler.peak_each.items()}

        with master.db.read() as conn:
            step = conn.execute(sa.select(steps).where(steps.c.buildid == buildid)
                                .order_by(steps.c.number)).first()
            log = conn.execute(sa.select(logs).where(logs.c.stepid == step.id,
                                                     logs.c.name == "stdio")).one()
        digest = hashlib.sha256()
        stored_out = 0
        for stream, text in iter_chunks_of(master, log.id):
            if stream == "o":
                data = text.encode()
                stored_out += len(data)
                digest.update(data)
        same = digest.hexdigest() == expected_digest(nbytes)
        seconds = step.finished_at - step.started_at
        rate = stored_out / seconds / 1e6 if seconds > 0 else float("nan")
        growth = (sampler.peak - idle) / 1024
        print(f"step: {stored_out} bytes of stdout in {seconds:.2f} s = {rate:.1f} MB/s "
              f"(force -> build finished: {wall:.2f} s); {log.num_chunks} chunks")
        master_cpu, worker_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        mib = stored_out / MIB
        print(f"CPU during the build: master processes {master_cpu:.2f} s "
              f"({master_cpu / mib * 1000:.1f} ms/MiB), the worker {worker_cpu:.2f} s "
              f"({worker_cpu / mib * 1000:.1f} ms/MiB) (the step's own program not counted)")
        print("  CPU per master process: " + ", ".join(
            f"{pid} {sec:.2f} s" for pid, sec in sorted(cpu_each.items())))
        print(f"stored stdout byte-identical to what the step printed: {'yes' if same else 'NO'}")
        print(f"master RSS (arbiter + web workers + daemon): idle {idle / 1024:.1f} MiB, "
              f"peak during ingest {sampler.peak / 1024:.1f} MiB (+{growth:.1f} MiB)")
        worker_growth = (wsampler.peak - worker_idle) / 1024
        print(f"worker RSS: before the build {worker_idle / 1024:.1f} MiB, peak "
              f"{wsampler.peak / 1024:.1f} MiB (+{worker_growth:.1f} MiB)")
        print("  peak per process: " + ", ".join(f"{pid} {kib / 1024:.1f} MiB"
                                                 for pid, kib in sorted(peak_each.items())))
        if not master.temporary:
            print(f"kept: --basedir {master.basedir}")
        result({
            "ingest_mb_s": round(rate, 1), "ingest_seconds": round(seconds, 2),
            "ingest_bytes": stored_out, "ingest_identical": same,
            "ingest_idle_mib": round(idle / 1024, 1),
            "ingest_peak_mib": round(sampler.peak / 1024, 1),
            "ingest_growth_mib": round(growth, 1),
            "ingest_master_cpu_s": round(master_cpu, 2),
            "ingest_master_cpu_ms_per_mib": round(master_cpu / mib * 1000, 2),
            "ingest_worker_cpu_s": round(worker_cpu, 2),
            "ingest_worker_growth_mib": round(worker_growth, 1),
            "ingest_worker_cpu_ms_per_mib": round(worker_cpu / mib * 1000, 2)})
        return 0 if same else 1
    finally:
        master.close()


def iter_chunks_of(master, logid: int):  # type: ignore[no-untyped-def]
    with master.db.read() as conn:
        yield from iter_chunks(conn, logid)


if __name__ == "__main__":
    sys.exit(main())
