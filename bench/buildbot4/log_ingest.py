"""Buildbot 4: a real step printing 50 MiB, ingest MB/s and the master's peak memory.

The counterpart of ``bench/log_ingest.py``: a fresh master with a builder ``biglog`` whose
one step runs a small Python program printing ``--mib`` MiB of numbered build-like lines
(the same kind of lines as bbweb's bench), on its own local worker. The master's RSS is
sampled every 20 ms from two seconds before the force to the end of the build; the rate is
the printed bytes over the step's run, seen from the database (polled every 20 ms,
read-only: Buildbot stores whole-second timestamps). The stored log is then fetched whole
(``/api/v2/logs/N/raw``, which also holds Buildbot's header lines: the command, the exit
code) and the program's output is looked for in it, byte for byte.

    .venv/bin/python bench/buildbot4/log_ingest.py --venv VENV --mib 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bb4  # noqa: E402
import biglog  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bb4.add_args(parser)
    parser.add_argument("--mib", type=int, default=50)
    args = parser.parse_args(argv)
    venv = bb4.checked_venv(args.venv)
    expected = biglog.program_output(args.mib)
    layout = bb4.Layout(builders=1, workers=1, big_log_mib=args.mib)
    with bb4.workdir(args.workdir) as where, \
            bb4.fresh_master(venv, where, "ingest", layout) as master:
        master.start()
        time.sleep(3.0)
        idle = bb4.rss_pss_mib(master.pid)[0]
        cpu0 = bb4.cpu_seconds(master.pid)
        with bb4.MemorySampler(master.pid) as sampler:
            time.sleep(2.0)
            run = biglog.run_biglog(master)
        cpu = bb4.cpu_seconds(master.pid) - cpu0
        resp = master.session.get(f"{master.url}/api/v2/logs/{run.logid}/raw", timeout=600)
        identical = biglog.holds_output(resp.content, expected)
    rate = len(expected) / run.seconds / 1e6
    growth = sampler.peak - idle
    print(f"step printed {len(expected):,} bytes in {run.seconds:.2f} s = {rate:.1f} MB/s "
          f"(result {run.results}, {run.num_lines:,} lines stored); master RSS idle "
          f"{idle:.1f} MiB, peak {sampler.peak:.1f} MiB (+{growth:.1f}); master CPU "
          f"{cpu:.1f} s; stored log identical to the output: {identical}")
    bb4.result({"ingest_bytes": len(expected), "ingest_mb_s": round(rate, 1),
                "ingest_seconds": round(run.seconds, 2), "ingest_idle_mib": round(idle, 1),
                "ingest_peak_mib": round(sampler.peak, 1),
                "ingest_growth_mib": round(growth, 1),
                "ingest_master_cpu_s": round(cpu, 2), "ingest_identical": identical})
    return 0


if __name__ == "__main__":
    sys.exit(main())
