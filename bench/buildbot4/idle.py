"""Buildbot 4 on the bench history: idle memory and CPU of the master, force -> finish.

The counterpart of ``bench/processes.py`` for bbweb. The master (one ``twistd`` process:
Buildbot 4 serves the web, schedules and runs builds in one process) is started on the
history with its workers, left to settle, then:

* RSS and PSS of the master process (``/proc/PID/smaps_rollup``; workers not counted);
* idle CPU: the master's own CPU time (utime + stime) over ``--idle-seconds``, as a
  percentage of one core;
* force -> finish of the one-step ``trivial`` builder: the force JSON-RPC call the web UI
  makes, to the moment its build request is seen complete in the database (polled every
  5 ms read-only from this process, so the master gets no extra HTTP load); the build's
  own ``complete_at`` is in whole seconds and cannot give milliseconds. Median of
  ``--builds``.

    .venv/bin/python bench/buildbot4/idle.py --venv VENV --history DIR
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bb4  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bb4.add_args(parser, history=True)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--builds", type=int, default=10)
    args = parser.parse_args(argv)
    venv = bb4.checked_venv(args.venv)
    history = bb4.ensure_history(venv, args.history.resolve())
    figures: dict[str, float] = {}
    with bb4.Master(venv, history, bb4.history_layout(history)) as master:
        master.start()
        time.sleep(args.settle)
        rss, pss = bb4.rss_pss_mib(master.pid)
        print(f"idle master (twistd pid {master.pid}): RSS {rss:.1f} MiB, PSS {pss:.1f} MiB",
              flush=True)
        figures.update(idle_rss_mib=round(rss, 1), idle_pss_mib=round(pss, 1))
        before = bb4.cpu_seconds(master.pid)
        time.sleep(args.idle_seconds)
        pct = (bb4.cpu_seconds(master.pid) - before) / args.idle_seconds * 100
        print(f"idle CPU over {args.idle_seconds:.0f} s: {pct:.3f} % of one core", flush=True)
        figures["idle_cpu_percent"] = round(pct, 3)
        latencies = []
        for i in range(args.builds):
            t0 = time.perf_counter()
            _bsid, brid = master.force("trivial", reason=f"bench {i}")
            latencies.append((bb4.wait_requests_complete(master, brid, 1, 120) - t0) * 1000)
            time.sleep(0.5)
        print("force -> finish (ms): " + ", ".join(f"{x:.0f}" for x in latencies), flush=True)
        figures["force_finish_ms"] = round(statistics.median(latencies), 1)
        rss, pss = bb4.rss_pss_mib(master.pid)
        figures.update(after_rss_mib=round(rss, 1), after_pss_mib=round(pss, 1))
    bb4.result(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
