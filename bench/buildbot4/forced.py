"""Buildbot 4: 200 forced builds of a one-step builder on 2 workers, builds per minute.

The counterpart of ``bench/engine_overhead.py``. A fresh master with a builder ``noop``
(one ``true`` step) on two local workers; once both are connected, ``--builds`` builds are
forced one after another through the force JSON-RPC (bbweb's bench forces them in one
engine transaction, without HTTP: Buildbot has no such path, so its clock includes the
forcing, printed separately) and the clock stops when the last build request is seen
complete in the database.

    .venv/bin/python bench/buildbot4/forced.py --venv VENV
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bb4  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bb4.add_args(parser)
    parser.add_argument("--builds", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    venv = bb4.checked_venv(args.venv)
    layout = bb4.Layout(builders=2, workers=args.workers, noop=True)
    with bb4.workdir(args.workdir) as where, \
            bb4.fresh_master(venv, where, "forced", layout) as master:
        master.start()
        time.sleep(1.0)
        cpu0 = bb4.cpu_seconds(master.pid)
        t0 = time.perf_counter()
        first = None
        for i in range(args.builds):
            _bsid, brid = master.force("noop", reason=f"overhead {i}")
            first = brid if first is None else first
        t_forced = time.perf_counter() - t0
        print(f"forced {args.builds} builds in {t_forced * 1000:.0f} ms (JSON-RPC, one by one)",
              flush=True)
        assert first is not None
        t_end = bb4.wait_requests_complete(master, first, args.builds, 1800, interval=0.05)
        wall = t_end - t0
        cpu = bb4.cpu_seconds(master.pid) - cpu0
        with master.db() as conn:
            results = dict(conn.execute("SELECT results, count(*) FROM builds GROUP BY "
                                        "results").fetchall())
    print(f"{args.builds} builds in {wall:.2f} s = {args.builds / wall * 60:.1f} builds/min "
          f"with {args.workers} workers; results {results}; master CPU {cpu:.1f} s "
          f"({cpu / args.builds * 1000:.1f} ms per build)")
    bb4.result({"forced_builds": args.builds, "forced_workers": args.workers,
                "forced_builds_per_min": round(args.builds / wall * 60, 1),
                "forced_master_cpu_ms": round(cpu / args.builds * 1000, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
