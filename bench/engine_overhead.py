"""What the build engine costs per build, end to end, with real processes.

A master with one builder whose single step is ``true``; a live gunicorn
(``bbweb.launcher.gunicorn_command``), the daemon (``bbweb master BASEDIR``) and N local
workers (``python -m bbweb.cli worker --master URL --name N --password P --basedir DIR``),
each a BuildSlave with ``max_builds=1``. Once every worker has said hello, the script forces
B builds through the engine (``engine.force.force_build`` in one transaction, B buildsets),
polls the database until all B requests are complete (with a deadline), and prints the wall
time, builds/s and the per-build overhead:

    per build (worker time) = wall time x workers / builds
    engine overhead         = per build - the command's own time

The command's own time is the ``elapsedTime=`` the worker writes at the end of each step's
log (its measurement of the ``true`` process, spawn to exit). All processes are stopped at
the end, also on errors and Ctrl-C.

    .venv/bin/python bench/engine_overhead.py                 # 200 builds, 2 workers
    .venv/bin/python bench/engine_overhead.py --full          # 2000 builds
    .venv/bin/python bench/engine_overhead.py --workers 4 --db-url postgresql+psycopg://…
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
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
    percentile,
    result,
    start_daemon,
    start_web,
    start_worker,
    wait_for,
)

from bbweb.db.schema import buildrequests, builds, logs, slaves, steps  # noqa: E402
from bbweb.engine.force import force_build  # noqa: E402
from bbweb.engine.logs import read_text  # noqa: E402

DEFAULT_BUILDS = 200
FULL_BUILDS = 2000
BUILDER = "noop"
ELAPSED = re.compile(r"elapsedTime=([0-9.]+)")


def _stats(values: list[float]) -> str:
    if not values:
        return "n/a"
    ms = [v * 1000 for v in values]
    return (f"mean {statistics.fmean(ms):7.1f} ms, p50 {percentile(ms, 50):7.1f} ms, "
            f"p95 {percentile(ms, 95):7.1f} ms, max {max(ms):7.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--builds", type=int, default=None,
                        help=f"builds to force (default {DEFAULT_BUILDS}; --full: "
                             f"{FULL_BUILDS})")
    parser.add_argument("--workers", type=int, default=2, help="local workers (default 2)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--deadline", type=float, default=600.0,
                        help="seconds to wait for all builds (default 600)")
    parser.add_argument("--full", action="store_true", help="the full size")
    args = parser.parse_args(argv)
    total = args.builds or (FULL_BUILDS if args.full else DEFAULT_BUILDS)
    install_signal_handlers()

    names = [f"worker-{i + 1}" for i in range(args.workers)]
    master = open_master(args.basedir, args.db_url, slaves=names, max_builds=1,
                         builders=[BuilderSpec(BUILDER, [["true"]], names)],
                         reset_db=args.reset_db, kind="overhead", title="bbweb engine bench")
    try:
        if BUILDER not in master.cfg.builders or any(n not in master.cfg.slaves for n in names):
            print(f"{master.basedir} is not an engine_overhead master (needs builder "
                  f"{BUILDER!r} and slaves {names})", file=sys.stderr)
            return 2
        banner("engine_overhead", basedir=f"{master.basedir}"
               f"{' (temporary)' if master.temporary else ' (kept)'}",
               database=master.db_label, builds=total, workers=args.workers,
               gunicorn=f"{args.web_workers} processes x 16 threads", step="['true']")
        with Processes(master.basedir) as procs:
            url = start_web(master, procs, workers=args.web_workers)
            start_daemon(master, procs)
            for name in names:
                start_worker(master, procs, url, name)

            def all_connected() -> bool:
                with master.db.read() as conn:
                    n = conn.execute(sa.select(sa.func.count()).select_from(slaves).where(
                        slaves.c.name.in_(names), slaves.c.connected.is_(True))).scalar_one()
                return n == len(names)

            wait_for(all_connected, 60, "the workers to connect", interval=0.2, procs=procs)
            time.sleep(1.0)  # let every worker settle into its claim long-poll

            with master.db.read() as conn:
                first_brid = (conn.execute(sa.select(sa.func.max(buildrequests.c.id)))
                              .scalar() or 0) + 1
            t0_wall = time.time()
            t0 = time.perf_counter()
            with master.db.write() as conn:
                for i in range(total):
                    force_build(conn, master.cfg, [BUILDER], reason=f"overhead {i}",
                                owner="bench", scheduler="force")
            t_forced = time.perf_counter() - t0
            print(f"forced {total} builds in {t_forced * 1000:.0f} ms (one transaction)",
                  flush=True)

            def done_count() -> int:
                with master.db.read() as conn:
                    return int(conn.execute(sa.select(sa.func.count()).select_from(
                        buildrequests).where(buildrequests.c.id >= first_brid,
                                             buildrequests.c.complete.is_(True))).scalar_one())

            deadline = t0 + args.deadline
            next_report = t0 + 10
            done = 0
            while True:
                procs.check_alive()
                done = done_count()
                now = time.perf_counter()
                if done >= total or now > deadline:
                    break
                if now >= next_report:
                    print(f"  ... {done}/{total} done after {now - t0:.0f} s", flush=True)
                    next_report = now + 10
                time.sleep(0.1)
            t_polled = time.perf_counter() - t0
            if done < total:
                print(f"DEADLINE: only {done}/{total} builds finished within "
                      f"{args.deadline:.0f} s")

            with master.db.read() as conn:
                brows = conn.execute(
                    sa.select(builds.c.id, builds.c.slaveid, builds.c.started_at,
                              builds.c.finished_at, builds.c.results)
                    .join(buildrequests, buildrequests.c.id == builds.c.buildrequestid)
                    .where(buildrequests.c.id >= first_brid,
                           builds.c.finished_at.isnot(None))).all()
                ids = [b.id for b in brows]
                srows = conn.execute(sa.select(steps.c.id, steps.c.started_at,
                                               steps.c.finished_at)
                                     .where(steps.c.buildid.in_(ids),
                                            steps.c.finished_at.isnot(None))).all() if ids \
                    else []
                cmd_times = []
                for (logid,) in conn.execute(sa.select(logs.c.id).where(
                        logs.c.stepid.in_([s.id for s in srows]), logs.c.name == "stdio")):
                    m = ELAPSED.search(read_text(conn, logid, "h"))
                    if m:
                        cmd_times.append(float(m.group(1)))
                slave_names = dict(conn.execute(sa.select(slaves.c.id, slaves.c.name)).all())

        # -- figures (processes are stopped by now) --
        n = len(brows)
        if not n:
            print("no build finished")
            return 1
        wall_db = max(b.finished_at for b in brows) - t0_wall
        per_worker: dict[int, list] = {}
        for b in brows:
            per_worker.setdefault(b.slaveid, []).append(b)
        gaps = []
        for rows in per_worker.values():
            rows.sort(key=lambda r: r.started_at)
            gaps += [nxt.started_at - prev.finished_at for prev, nxt in zip(rows, rows[1:],
                                                                             strict=False)]
        results: dict[int, int] = {}
        for b in brows:
            results[b.results] = results.get(b.results, 0) + 1
        per_build = wall_db * args.workers / n
        cmd = statistics.fmean(cmd_times) if cmd_times else 0.0
        print()
        print(f"builds finished: {n}/{total}; results {results} (0 = SUCCESS); per worker "
              + ", ".join(f"{slave_names.get(k, k)} {len(v)}" for k, v in per_worker.items()))
        print(f"wall time (force -> last build finished, db clock): {wall_db:.2f} s "
              f"(polled: {t_polled:.2f} s)")
        print(f"throughput: {n / wall_db:.1f} builds/s with {args.workers} workers")
        print(f"per build (wall x workers / builds): {per_build * 1000:.1f} ms")
        print(f"command's own time (elapsedTime in the step logs, {len(cmd_times)} steps): "
              f"{cmd * 1000:.1f} ms mean")
        print(f"engine overhead per build (per build - command): {(per_build - cmd) * 1000:.1f} ms")
        print(f"first build started {min(b.started_at for b in brows) - t0_wall:.2f} s after "
              "the force")
        print("build duration (claim -> finished):   "
              + _stats([b.finished_at - b.started_at for b in brows]))
        print("step duration (next_step -> finish):  "
              + _stats([s.finished_at - s.started_at for s in srows]))
        print("gap between builds on one worker:     " + _stats(gaps))
        if not master.temporary:
            print(f"kept: --basedir {master.basedir}")
        if n == total:
            result({"forced_builds": n, "forced_workers": args.workers,
                    "forced_builds_per_min": round(n / wall_db * 60, 1),
                    "forced_overhead_ms": round((per_build - cmd) * 1000, 1)})
        return 0 if n == total else 1
    finally:
        master.close()


if __name__ == "__main__":
    sys.exit(main())
