"""Buildbot 4: the REST equivalent of bbweb's last-20-builds request, req/s at c=1 and c=8.

The counterpart of ``bench/json_builds.py``'s ``select20`` figures: on the history master,
``GET /api/v2/builders/N/builds?order=-number&limit=20`` (the builder's last 20 builds, what
``/json/builders/B/builds?select=-1…-20`` gives in 0.8's JSON; Buildbot 4's answer has no
steps or properties, so it is much smaller), loaded with the same client as bbweb's bench
(ApacheBench when installed, else Python threads), 50 requests of warm-up, then
``--requests`` at each concurrency. Also prints the master's CPU time per request (its own
utime + stime, which other load on the machine does not inflate).

    .venv/bin/python bench/buildbot4/rest_builds.py --venv VENV --history DIR
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bb4  # noqa: E402
from json_builds import load_ab, load_python  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bb4.add_args(parser, history=True)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--builder", default="builder-00")
    parser.add_argument("--client", choices=("ab", "python"), default=None)
    args = parser.parse_args(argv)
    venv = bb4.checked_venv(args.venv)
    history = bb4.ensure_history(venv, args.history.resolve())
    client = args.client or ("ab" if shutil.which("ab") else "python")
    load = load_ab if client == "ab" else load_python
    figures: dict[str, float | int | str] = {"client": client}
    with bb4.Master(venv, history, bb4.history_layout(history)) as master:
        master.start(workers=False)
        path = (f"/api/v2/builders/{master.builder_ids[args.builder]}/builds"
                "?order=-number&limit=20")
        body = master.session.get(master.url + path, timeout=60)
        count = len(body.json()["builds"])
        figures["rest_select20_bytes"] = len(body.content)
        print(f"GET {path}: {count} builds, {len(body.content):,} bytes; load from {client}",
              flush=True)
        load(master.url + path, 50, 2)
        for c in [int(x) for x in args.concurrency.split(",")]:
            cpu0 = bb4.cpu_seconds(master.pid)
            live = load(master.url + path, args.requests, c)
            live.cpu_ms = (bb4.cpu_seconds(master.pid) - cpu0) / args.requests * 1000
            print(live.line("select20", c, args.requests), flush=True)
            figures[f"json_select20_c{c}_rps"] = round(live.rate, 1)
            figures[f"json_select20_c{c}_median_ms"] = round(live.median_ms, 2)
            figures[f"json_select20_c{c}_server_cpu_ms"] = round(live.cpu_ms, 2)
            if live.errors:
                figures[f"json_select20_c{c}_errors"] = live.errors
    bb4.result(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
