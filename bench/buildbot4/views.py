"""Buildbot 4: the data the grid and console pages load, from its REST API.

The counterpart of ``bench/views.py``'s ``/grid`` and ``/console`` figures. Buildbot 4's
grid and console are JavaScript pages (the ``grid_view`` and ``console_view`` plugins)
that fetch their data from the REST API and lay the table out in the browser; the server's
share of a page is those requests. With the plugins' default settings they are:

* grid: ``/buildsets?limit=1000&order=-bsid``, ``/changes?limit=100&order=-changeid``,
  ``/builders``, ``/buildrequests?limit=1000&order=-buildrequestid``,
  ``/builds?limit=1000&order=-buildrequestid``;
* console: ``/buildsets?limit=200&order=-submitted_at``,
  ``/changes?limit=30&order=-changeid``, ``/builders``,
  ``/buildrequests?limit=200&order=-submitted_at``,
  ``/builds?limit=200&order=-started_at&property=got_revision``.

The browser sends them at once, but the master answers them one after another (one
process, one thread for the database), so a page's figure is the time to fetch them all
in sequence on a keep-alive connection; median of ``--repeat`` after one warm-up, with
the master's CPU time per page (not inflated by other load on the machine) and the bytes.

    .venv/bin/python bench/buildbot4/views.py --venv VENV --history DIR
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bb4  # noqa: E402

PAGES = {
    "grid": ["/api/v2/buildsets?limit=1000&order=-bsid",
             "/api/v2/changes?limit=100&order=-changeid",
             "/api/v2/builders",
             "/api/v2/buildrequests?limit=1000&order=-buildrequestid",
             "/api/v2/builds?limit=1000&order=-buildrequestid"],
    "console": ["/api/v2/buildsets?limit=200&order=-submitted_at",
                "/api/v2/changes?limit=30&order=-changeid",
                "/api/v2/builders",
                "/api/v2/buildrequests?limit=200&order=-submitted_at",
                "/api/v2/builds?limit=200&order=-started_at&property=got_revision"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bb4.add_args(parser, history=True)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    venv = bb4.checked_venv(args.venv)
    history = bb4.ensure_history(venv, args.history.resolve())
    figures: dict[str, float] = {}
    with bb4.Master(venv, history, bb4.history_layout(history)) as master:
        master.start(workers=False)
        for name, paths in PAGES.items():
            times, size = [], 0
            cpu0 = 0.0
            for i in range(args.repeat + 1):
                if i == 1:
                    cpu0 = bb4.cpu_seconds(master.pid)
                t0 = time.perf_counter()
                size = 0
                for path in paths:
                    resp = master.session.get(master.url + path, timeout=300)
                    resp.raise_for_status()
                    size += len(resp.content)
                if i:
                    times.append((time.perf_counter() - t0) * 1000)
            cpu = (bb4.cpu_seconds(master.pid) - cpu0) / args.repeat * 1000
            median = statistics.median(times)
            print(f"{name}: {len(paths)} REST requests, {size:,} bytes: median {median:.0f} ms "
                  f"(min {min(times):.0f}, max {max(times):.0f}); master CPU {cpu:.0f} ms "
                  "per page", flush=True)
            figures[f"view_{name}_ms"] = round(median, 1)
            figures[f"view_{name}_cpu_ms"] = round(cpu, 1)
            figures[f"view_{name}_bytes"] = size
    bb4.result(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
