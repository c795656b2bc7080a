"""Server time and SQL statements of the overview views against a big history.

In-process, with Flask's test client (as ``bench/pages.py``): for each of ``/waterfall``,
``/grid``, ``/tgrid``, ``/console``, ``/rss``, ``/atom`` and ``/png?builder=B`` it makes
``--warmup`` requests, counts the SQL statements of one request (transaction control
excluded, as ``tests/support/querycount.py`` does), then times ``--repeat`` requests
(default 50) and prints the median and p95 server time (request + reading the body) and
the response size. A view that does not exist answers 404 and is reported as "not
available (404)"; any other non-200 answer is printed with its status.

The issue's goal: each view under 50 ms on 50 builders x 20,000 builds, and within 1.5x
of that on a history ten times smaller. Make both with ``bench/bulk_history.py``, then:

    .venv/bin/python bench/views.py --basedir /tmp/bbbench-20k
    .venv/bin/python bench/views.py --basedir /tmp/bbbench-20k --compare /tmp/bbbench-2k
    # the same master's config on another database (e.g. a PostgreSQL copy):
    .venv/bin/python bench/views.py --basedir /tmp/bbbench-pg-20k --db-url postgresql://...

``--compare SMALL`` measures the master in SMALL too and prints, per view, big/small ratios
of the median, the p95 and the statement count. ``--url`` replaces the list of views
(repeatable), ``--show-sql`` prints each view's statements. Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from _common import banner, percentile, result, safe_url  # noqa: E402

from bbweb.app import create_app, freeze_startup_objects  # noqa: E402
from bbweb.db.connection import normalize_db_url  # noqa: E402
from bbweb.db.schema import builders, builds  # noqa: E402
from bbweb.mastercfg.master import load_master_config  # noqa: E402

VIEWS = ("/waterfall", "/grid", "/tgrid", "/console", "/rss", "/atom", "/png?builder={builder}")
GOAL_MS = 50.0
GOAL_RATIO = 1.5


@dataclass
class Measure:
    url: str
    status: int
    queries: int = 0
    times: list[float] = field(default_factory=list)
    size: int = 0
    statements: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def available(self) -> bool:
        return self.status == 200

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def p95(self) -> float:
        return percentile(self.times, 95)


def open_app(basedir: str, db_url: str | None) -> Any:
    """The WSGI app of the master in ``basedir``, optionally on another database."""
    cfg = load_master_config(basedir)
    if db_url:
        cfg.db_url = normalize_db_url(db_url, basedir)
    app = create_app(basedir, config=cfg, testing=False)
    freeze_startup_objects()  # as bbweb.app.serving_app does for gunicorn
    # an exception reaches measure() (reported in one line) instead of a logged traceback
    app.config["PROPAGATE_EXCEPTIONS"] = True
    return app


def history(app: Any) -> tuple[int, int, str]:
    """(builders, builds per builder at most, first builder's name)."""
    db = app.extensions["bbweb"].db
    with db.read() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(builders)).scalar() or 0
        most = conn.execute(sa.select(sa.func.max(builders.c.next_number))).scalar() or 0
        first = conn.execute(sa.select(builders.c.name).order_by(builders.c.name)
                             .limit(1)).scalar() or ""
        if not most:
            most = conn.execute(sa.select(sa.func.count()).select_from(builds)).scalar() or 0
    return int(count), int(most), str(first)


def measure(app: Any, url: str, repeat: int, warmup: int) -> Measure:
    try:
        return _measure(app, url, repeat, warmup)
    except Exception as exc:  # a view under construction: report it, measure the others
        return Measure(url, 500, error=f"{type(exc).__name__}: {exc}"[:200])


def _measure(app: Any, url: str, repeat: int, warmup: int) -> Measure:
    client = app.test_client()
    resp = client.get(url)
    resp.get_data()
    if resp.status_code != 200:
        return Measure(url, resp.status_code)
    for _ in range(max(warmup - 1, 0)):
        client.get(url).get_data()
    engine = app.extensions["bbweb"].db.engine
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        size = len(client.get(url).get_data())
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = client.get(url)
        r.get_data()
        times.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            return Measure(url, r.status_code)
    return Measure(url, 200, len(seen), times, size, seen)


def measure_master(basedir: str, db_url: str | None, urls: list[str], repeat: int,
                   warmup: int) -> tuple[dict[str, Measure], tuple[int, int, str]]:
    app = open_app(basedir, db_url)
    try:
        shape = history(app)
        out = {}
        for template in urls:
            url = template.format(builder=shape[2])
            out[template] = measure(app, url, repeat, warmup)
        return out, shape
    finally:
        app.extensions["bbweb"].db.dispose()


def _state(m: Measure) -> str:
    if m.status == 404:
        return "not available (404)"
    return f"HTTP {m.status}" + (f" ({m.error})" if m.error else "")


def _goal(m: Measure) -> str:
    if m.median >= GOAL_MS:
        return f"OVER {GOAL_MS:.0f} ms"
    return "ok" if m.p95 < GOAL_MS else "ok (p95 over)"


def print_table(title: str, results: dict[str, Measure], show_sql: bool) -> None:
    print(f"\n{title}")
    print(f"{'view':28} {'queries':>8} {'min ms':>8} {'median ms':>10} {'p95 ms':>8} "
          f"{'bytes':>9}  goal (median < {GOAL_MS:.0f} ms)")
    for m in results.values():
        if not m.available:
            print(f"{m.url:28} {_state(m)}")
            continue
        print(f"{m.url:28} {m.queries:>8} {min(m.times):>8.2f} {m.median:>10.2f} "
              f"{m.p95:>8.2f} {m.size:>9}  {_goal(m)}")
        if show_sql:
            for s in m.statements:
                print("    " + " ".join(s.split())[:400])
    sys.stdout.flush()


def print_compare(big: dict[str, Measure], small: dict[str, Measure]) -> None:
    print(f"\nbig / small (goal: median ratio <= {GOAL_RATIO})")
    print(f"{'view':28} {'median':>8} {'p95':>8} {'queries':>8}  goal")
    for key, b in big.items():
        s = small[key]
        if not (b.available and s.available):
            print(f"{b.url:28} {_state(b) if not b.available else _state(s)}")
            continue
        ratio = b.median / s.median if s.median else float("nan")
        ok = "ok" if ratio <= GOAL_RATIO else "GROWS"
        print(f"{b.url:28} {ratio:>8.2f} {b.p95 / s.p95 if s.p95 else float('nan'):>8.2f} "
              f"{b.queries:>4}/{s.queries:<3}  {ok}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--basedir", required=True, help="a master with history "
                        "(e.g. made by bench/bulk_history.py)")
    parser.add_argument("--db-url", default=None,
                        help="use this database instead of the one in the basedir's "
                             "master.cfg (same builders expected)")
    parser.add_argument("--compare", metavar="BASEDIR_SMALL", default=None,
                        help="also measure this (smaller) master and print big/small ratios")
    parser.add_argument("--compare-db-url", default=None,
                        help="database for --compare instead of its master.cfg's")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--url", action="append", default=None,
                        help="measure this path instead of the default views (repeatable; "
                             "{builder} is replaced by the first builder's name)")
    parser.add_argument("--show-sql", action="store_true")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    for d in (args.basedir, args.compare):
        if d and not (Path(d) / "master.cfg").is_file():
            raise SystemExit(f"{d} has no master.cfg (make one with bench/bulk_history.py)")
    urls = args.url or list(VIEWS)

    big, shape = measure_master(args.basedir, args.db_url, urls, args.repeat, args.warmup)
    cfg = load_master_config(args.basedir)
    banner("views", basedir=args.basedir,
           database=safe_url(normalize_db_url(args.db_url, args.basedir) if args.db_url
                             else cfg.db_url),
           history=f"{shape[0]} builders, up to {shape[1]} builds each",
           requests=f"{args.repeat} per view after {args.warmup} warm-up (server time, "
           "in-process)")
    print_table(f"{args.basedir}", big, args.show_sql)
    if args.compare:
        small, sshape = measure_master(args.compare, args.compare_db_url, urls, args.repeat,
                                       args.warmup)
        print_table(f"{args.compare} ({sshape[0]} builders, up to {sshape[1]} builds each)",
                    small, args.show_sql)
        print_compare(big, small)
    figures = {}
    for m in big.values():
        if m.available:
            name = m.url.strip("/").split("?")[0] or "root"
            figures[f"view_{name}_ms"] = round(m.median, 2)
            figures[f"view_{name}_queries"] = m.queries
    result(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
