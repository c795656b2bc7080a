"""Buildbot 4: downloading a 50 MiB step log whole, MiB/s and the master's memory growth.

The counterpart of ``bench/pages.py --log-only`` (its text download): a fresh master runs
the ``biglog`` build once (a step printing ``--log-mb`` MiB, not timed), then the log is
fetched from ``/api/v2/logs/N/raw`` (the download link of Buildbot 4's log viewer) as a
stream, ``--repeat`` times; median MiB/s, and the master's largest RSS growth over its
RSS before the downloads (sampled every 20 ms).

    .venv/bin/python bench/buildbot4/log_download.py --venv VENV --log-mb 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bb4  # noqa: E402
import biglog  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bb4.add_args(parser)
    parser.add_argument("--log-mb", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    venv = bb4.checked_venv(args.venv)
    layout = bb4.Layout(builders=1, workers=1, big_log_mib=args.log_mb)
    rates = []
    with bb4.workdir(args.workdir) as where, \
            bb4.fresh_master(venv, where, "download", layout) as master:
        master.start()
        run = biglog.run_biglog(master, interval=0.2)
        time.sleep(2.0)
        before = bb4.rss_pss_mib(master.pid)[0]
        url = f"{master.url}/api/v2/logs/{run.logid}/raw"
        with bb4.MemorySampler(master.pid) as sampler:
            for _ in range(args.repeat):
                size = 0
                t0 = time.perf_counter()
                with master.session.get(url, stream=True, timeout=600) as resp:
                    resp.raise_for_status()
                    for chunk in resp.iter_content(1 << 16):
                        size += len(chunk)
                rates.append(size / 2**20 / (time.perf_counter() - t0))
    growth = sampler.peak - before
    rate = statistics.median(rates)
    print(f"GET {url}: {size:,} bytes; " + ", ".join(f"{r:.1f}" for r in rates)
          + f" MiB/s; master RSS {before:.1f} MiB before, peak +{growth:.1f} MiB")
    bb4.result({"log_download_mib": args.log_mb, "log_download_mb_s": round(rate, 1),
                "log_download_growth_mib": round(growth, 1), "log_download_bytes": size})
    return 0


if __name__ == "__main__":
    sys.exit(main())
