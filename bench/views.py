"""Server time, CPU and SQL statements of the status pages against a big history.

In-process, with Flask's test client (as ``bench/pages.py``): for each of ``/waterfall``,
``/grid``, ``/tgrid``, ``/console``, ``/rss``, ``/atom``, ``/png?builder=B``, ``/builders``,
the first builder's page, its newest build's page and one half-way back,
``/one_line_per_build``, ``/json/builders``, the 0.8 JSON list of its last 20 builds
(``/json/builders/B/builds?select=-1&...&select=-20``) and its last build as JSON, it makes
``--warmup`` requests, counts the SQL statements of one request (transaction control
excluded, as ``tests/support/querycount.py`` does), then times ``--repeat`` requests
(default 50) and prints the median and p95 server time (request + reading the body), the
CPU time per request of this process (Flask, SQLAlchemy and, on SQLite, the database
itself) and, on PostgreSQL, of the server processes behind the app's connections (from
``/proc``: the server must run on this host), and the response size. On a shared machine
the wall-clock figures follow the other load; the CPU figures hardly do. A view that does
not exist answers 404 and is reported as "not available (404)"; any other non-200 answer is
printed with its status.

The goal: each page under 30 ms on 50 builders x 20,000 builds (a million builds) and
still at ten million, about as fast as on a history a hundred times smaller. Make the
histories with ``bench/bulk_history.py``, then:

    .venv/bin/python bench/views.py --basedir /tmp/bbbench-20k
    .venv/bin/python bench/views.py --basedir /tmp/bbbench-20k --compare /tmp/bbbench-200
    # the same master's config on another database (e.g. a PostgreSQL copy):
    .venv/bin/python bench/views.py --basedir /tmp/bbbench-pg-20k --db-url postgresql://...

``--compare SMALL`` measures the master in SMALL too and prints, per view, big/small ratios
of the median, the minimum, the p95, the CPU per request and the statement count; a page
whose CPU per request grows by more than 1.25x is marked ``GROWS``. ``--url`` replaces the
list of views (repeatable), ``--show-sql`` prints each view's statements and ``--explain``
their plans (``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN (ANALYZE, BUFFERS)`` on
PostgreSQL) with the time to run each and fetch its rows: the way to find the statement
behind a page that grows. The load average is printed with each table. Nothing here
asserts a timing.
"""

from __future__ import annotations

import argparse
import math
import os
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

VIEWS = ("/waterfall", "/grid", "/tgrid", "/console", "/rss", "/atom", "/png?builder={builder}",
         "/builders", "/builders/{builder}", "/builders/{builder}/builds/{last}",
         "/builders/{builder}/builds/{old}", "/one_line_per_build",
         "/json/builders", "/json/builders/{builder}/builds?" + "&".join(
             f"select=-{i}" for i in range(1, 21)),
         "/json/builders/{builder}/builds/-1")
GOAL_MS = 30.0
GOAL_RATIO = 1.25


@dataclass
class Measure:
    url: str
    status: int
    queries: int = 0
    times: list[float] = field(default_factory=list)
    size: int = 0
    statements: list[str] = field(default_factory=list)
    parameters: list[Any] = field(default_factory=list)
    plans: list[str] = field(default_factory=list)
    error: str = ""
    cpu_ms: float = float("nan")  # this process (Flask, SQLAlchemy, SQLite) per request
    db_cpu_ms: float = float("nan")  # PostgreSQL's server processes per request

    @property
    def available(self) -> bool:
        return self.status == 200

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def total_cpu_ms(self) -> float:
        """CPU per request of this process and, on PostgreSQL, the server processes."""
        return self.cpu_ms + (0.0 if math.isnan(self.db_cpu_ms) else self.db_cpu_ms)

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
    params: list[Any] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            seen.append(statement)
            params.append(parameters)

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        size = len(client.get(url).get_data())
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
    times = []
    backends = db_backend_pids(app)
    db0 = proc_cpu_seconds(backends)
    cpu0 = time.process_time()
    for _ in range(repeat):
        t = time.perf_counter()
        r = client.get(url)
        r.get_data()
        times.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            return Measure(url, r.status_code)
    cpu = (time.process_time() - cpu0) * 1000 / repeat
    db_cpu = (proc_cpu_seconds(backends) - db0) * 1000 / repeat if backends else float("nan")
    return Measure(url, 200, len(seen), times, size, seen, params, cpu_ms=cpu,
                   db_cpu_ms=db_cpu)


def explain(app: Any, m: Measure) -> None:
    """Each statement's plan (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN ANALYZE) and
    the time to run it and fetch every row, to find the statement that grows."""
    engine = app.extensions["bbweb"].db.engine
    pg = engine.dialect.name == "postgresql"
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for statement, parameters in zip(m.statements, m.parameters, strict=True):
            t = time.perf_counter()
            cur.execute(statement, parameters)
            rows = len(cur.fetchall()) if cur.description else 0
            ms = (time.perf_counter() - t) * 1000
            prefix = "EXPLAIN (ANALYZE, BUFFERS) " if pg else "EXPLAIN QUERY PLAN "
            cur.execute(prefix + statement, parameters)
            plan = [str(r[0]) if pg else f"{'  ' * (r[1] > 0)}{r[3]}" for r in cur.fetchall()]
            m.plans.append(f"{ms:8.2f} ms {rows:6} rows  " + " ".join(statement.split())[:160]
                           + "".join("\n" + " " * 12 + line for line in plan))
        raw.rollback()
    finally:
        raw.close()


def db_backend_pids(app: Any) -> list[int]:
    """PostgreSQL's server processes serving this app's pooled connections (none on SQLite).

    Their CPU time is the database's share of a request: on a shared machine it hardly
    depends on the other load, unlike the wall-clock time. Reading it needs the server on
    this host and a user allowed to read its /proc entries (root, or the server's user).
    """
    db = app.extensions["bbweb"].db
    if db.engine.dialect.name != "postgresql":
        return []
    with db.read() as conn:
        pids = [int(p) for p in conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend'").scalars()]
    return [p for p in pids if os.access(f"/proc/{p}/stat", os.R_OK)]


def proc_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds these processes have run: from ``/proc/PID/schedstat`` (nanoseconds)
    where the kernel keeps it, else user + system from ``/proc/PID/stat`` (clock ticks,
    10 ms: too coarse for a few requests). A vanished process counts 0."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
            continue
        except (OSError, ValueError, IndexError):
            pass
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def measure_master(basedir: str, db_url: str | None, urls: list[str], repeat: int,
                   warmup: int, plans: bool = False
                   ) -> tuple[dict[str, Measure], tuple[int, int, str]]:
    app = open_app(basedir, db_url)
    try:
        shape = history(app)
        out = {}
        for template in urls:
            url = template.format(builder=shape[2], last=max(shape[1] - 1, 0),
                                  old=shape[1] // 2)
            out[template] = measure(app, url, repeat, warmup)
            if plans and out[template].available:
                explain(app, out[template])
        return out, shape
    finally:
        app.extensions["bbweb"].db.dispose()


def label(url: str) -> str:
    """The URL as printed: a long run of ``select=`` arguments shortened to its range."""
    if "select=" in url:
        sel = [a.split("=", 1)[1] for a in url.split("?", 1)[1].split("&")]
        return f"{url.split('?', 1)[0]}?select={sel[0]}..{sel[-1]}"
    return url


def _state(m: Measure) -> str:
    if m.status == 404:
        return "not available (404)"
    return f"HTTP {m.status}" + (f" ({m.error})" if m.error else "")


def _goal(m: Measure) -> str:
    if m.median >= GOAL_MS:
        return f"OVER {GOAL_MS:.0f} ms"
    return "ok" if m.p95 < GOAL_MS else "ok (p95 over)"


def _num(value: float) -> str:
    return f"{'-':>7}" if math.isnan(value) else f"{value:>7.2f}"


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def print_table(title: str, results: dict[str, Measure], show_sql: bool) -> None:
    print(f"\n{title}   (load average {load_average()})")
    print(f"{'view':44} {'queries':>7} {'min ms':>7} {'median':>7} {'p95 ms':>7} "
          f"{'cpu ms':>7} {'db cpu':>7} {'bytes':>8}  goal (median < {GOAL_MS:.0f} ms)")
    for m in results.values():
        if not m.available:
            print(f"{label(m.url):44} {_state(m)}")
            continue
        print(f"{label(m.url):44} {m.queries:>7} {min(m.times):>7.2f} {m.median:>7.2f} "
              f"{m.p95:>7.2f} {m.cpu_ms:>7.2f} {_num(m.db_cpu_ms)} {m.size:>8}  {_goal(m)}")
        if m.plans:
            for p in m.plans:
                print("    " + p)
        elif show_sql:
            for s in m.statements:
                print("    " + " ".join(s.split())[:400])
    sys.stdout.flush()


def print_compare(big: dict[str, Measure], small: dict[str, Measure]) -> None:
    print(f"\nbig / small (goal: median ratio <= {GOAL_RATIO}; cpu = this process's CPU "
          "per request, steadier than wall time on a shared machine)")
    print(f"{'view':44} {'median':>7} {'min':>7} {'p95':>7} {'cpu':>7} {'db cpu':>7} "
          f"{'queries':>8}  goal")
    for key, b in big.items():
        s = small[key]
        if not (b.available and s.available):
            print(f"{key:44} {_state(b) if not b.available else _state(s)}")
            continue
        ratio = _ratio(b.median, s.median)
        cpu_ratio = _ratio(b.total_cpu_ms, s.total_cpu_ms)
        if cpu_ratio > GOAL_RATIO:
            ok = "GROWS (cpu)"
        else:
            ok = "ok" if ratio <= GOAL_RATIO else "ok (cpu; wall time noisy)"
        print(f"{key[:44]:44} {ratio:>7.2f} {_ratio(min(b.times), min(s.times)):>7.2f} "
              f"{_ratio(b.p95, s.p95):>7.2f} {_ratio(b.cpu_ms, s.cpu_ms):>7.2f} "
              f"{_num(_ratio(b.db_cpu_ms, s.db_cpu_ms))} {b.queries:>4}/{s.queries:<3}  {ok}")
    sys.stdout.flush()


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


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
                             "{builder} is replaced by the first builder's name, {last} by "
                             "its newest build's number, {old} by one half-way back)")
    parser.add_argument("--show-sql", action="store_true")
    parser.add_argument("--explain", action="store_true",
                        help="print each statement's plan and its time to run and fetch "
                             "(EXPLAIN QUERY PLAN on SQLite, EXPLAIN ANALYZE on PostgreSQL)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    for d in (args.basedir, args.compare):
        if d and not (Path(d) / "master.cfg").is_file():
            raise SystemExit(f"{d} has no master.cfg (make one with bench/bulk_history.py)")
    urls = args.url or list(VIEWS)

    big, shape = measure_master(args.basedir, args.db_url, urls, args.repeat, args.warmup,
                                 args.explain)
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
                                       args.warmup, args.explain)
        print_table(f"{args.compare} ({sshape[0]} builders, up to {sshape[1]} builds each)",
                    small, args.show_sql)
        print_compare(big, small)
    figures = {}
    for template, m in big.items():
        if m.available:
            name = (template.strip("/").split("?")[0].replace("{builder}", "B")
                    .replace("{", "").replace("}", "").replace("/", "_") or "root")
            figures[f"view_{name}_ms"] = round(m.median, 2)
            figures[f"view_{name}_queries"] = m.queries
            figures[f"view_{name}_cpu_ms"] = round(m.total_cpu_ms, 2)
    result(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
