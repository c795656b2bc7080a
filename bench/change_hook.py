"""Changes per second through ``POST /change_hook/base`` on a real gunicorn.

gunicorn runs as ``bbweb start`` runs it (``bbweb.launcher.gunicorn_command``: N processes
x 16 threads) on a free loopback port; the client POSTs the form fields ``bbweb
sendchange`` sends, from 1 and then 8 threads (one ``requests.Session`` each). Every
change is stored, emits its event and runs the schedulers in one transaction; the bench
master has one SingleBranchScheduler per builder keyed on ``project``, and the changes
rotate over the builders, so each accepted change also creates a buildset with one build
request (nothing claims them: no workers run).

    .venv/bin/python bench/change_hook.py                  # 1000 changes per level
    .venv/bin/python bench/change_hook.py --full           # 10000 per level
    .venv/bin/python bench/change_hook.py --db-url postgresql+psycopg://u:pw@host/db
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from _common import (  # noqa: E402
    Processes,
    add_common_args,
    banner,
    install_signal_handlers,
    result,
    run_load,
    start_web,
)
from _rawhttp import encode_post, run_raw  # noqa: E402
from json_builds import tree_cpu_seconds  # noqa: E402
from populate import default_master  # noqa: E402

from bbweb.db.schema import buildrequests, changes  # noqa: E402

DEFAULT_REQUESTS = 1000
FULL_REQUESTS = 10000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--requests", type=int, default=None,
                        help=f"changes per concurrency level (default {DEFAULT_REQUESTS}; "
                             f"--full: {FULL_REQUESTS})")
    parser.add_argument("--concurrency", default="1,8", help="levels, default 1,8")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--full", action="store_true", help="the full size")
    parser.add_argument("--client", choices=("raw", "requests"), default="raw",
                        help="raw: prepared requests on keep-alive sockets (default; "
                             "leaves the CPU to the server); requests: a requests.Session "
                             "per thread")
    args = parser.parse_args(argv)
    nreq = args.requests or (FULL_REQUESTS if args.full else DEFAULT_REQUESTS)
    levels = [int(c) for c in args.concurrency.split(",")]
    install_signal_handlers()

    master = default_master(args, kind="hook")
    try:
        builders = list(master.cfg.builders)
        banner("change_hook", basedir=f"{master.basedir}"
               f"{' (temporary)' if master.temporary else ' (kept)'}",
               database=master.db_label, builders=len(builders),
               history=f"{master.history()} builds per builder",
               requests=f"{nreq} per level, levels {levels}",
               gunicorn=f"{args.web_workers} processes x 16 threads", client=args.client)
        with master.db.read() as conn:
            changes_before = conn.execute(sa.select(sa.func.count()).select_from(changes)
                                          ).scalar_one()
            brs_before = conn.execute(sa.select(sa.func.count()).select_from(buildrequests)
                                      ).scalar_one()
        with Processes(master.basedir) as procs:
            base = start_web(master, procs, workers=args.web_workers)
            hook = base + "/change_hook/base"
            serial = itertools.count(1)  # next() on it is atomic in CPython
            sent = 0

            def fields_of(n):
                rev = hashlib.sha1(f"hook-{n}".encode()).hexdigest()
                return {
                    "author": f"dev{n % 7} <dev{n % 7}@example.org>",
                    "comments": f"bench change {n}\n\nposted by bench/change_hook.py",
                    "revision": rev, "branch": "main",
                    "project": builders[n % len(builders)],
                    "repository": "https://example.org/repo.git",
                    "files": json.dumps([f"src/file{n % 13}.c", "README"]),
                    "properties": json.dumps({"bench": n}),
                }

            def send(session, i):
                return session.post(hook, data=fields_of(next(serial)), timeout=60,
                                    headers={"Accept": "text/plain"})

            def load(total, c):
                if args.client == "requests":
                    return run_load(send, total, c, ok=(202,))
                prepared = [encode_post(hook, urlencode(fields_of(next(serial))).encode(), {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "text/plain"}) for _ in range(total)]
                return run_raw(base, prepared, c, ok=(202,))

            warm = load(10, 1)
            sent += warm.requests
            if warm.errors:
                print("warm-up errors: " + "; ".join(warm.errors[:3]))
                return 1
            print(f"POST {hook}")
            figures: dict[str, float] = {}
            for c in levels:
                cpu = tree_cpu_seconds(procs.procs["web"].pid)
                client = time.process_time()
                res = load(nreq, c)
                client = time.process_time() - client
                cpu = tree_cpu_seconds(procs.procs["web"].pid) - cpu
                sent += res.requests
                figures[f"base_hook_changes_s_c{c}"] = round(res.rate, 1)
                figures[f"base_hook_errors_c{c}"] = len(res.errors)
                print("  " + res.line("changes/s"))
                print(f"    CPU per change: server {cpu / nreq * 1000:.2f} ms, "
                      f"client {client / nreq * 1000:.2f} ms")
                figures[f"base_hook_server_cpu_ms_c{c}"] = round(cpu / nreq * 1000, 3)
                if res.errors:
                    print("    errors: " + "; ".join(res.errors[:3]))
                sys.stdout.flush()
        with master.db.read() as conn:
            new_changes = conn.execute(sa.select(sa.func.count()).select_from(changes)
                                       ).scalar_one() - changes_before
            new_brs = conn.execute(sa.select(sa.func.count()).select_from(buildrequests)
                                   ).scalar_one() - brs_before
        print(f"stored: {new_changes} changes and {new_brs} build requests "
              f"(warm-up included; {sent} POSTs sent)")
        if not master.temporary:
            print(f"kept: --basedir {master.basedir}")
        figures["base_hook_stored"] = int(new_changes == sent)
        result(figures)
    finally:
        master.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
