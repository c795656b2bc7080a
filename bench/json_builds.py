"""``/json`` cost against build history: req/s through gunicorn, and SQL queries per request
at two (or more) history sizes, counted in-process.

Part 1 (in-process, Flask test client on ``bbweb.app.create_app(basedir)``): SQLAlchemy
``before/after_cursor_execute`` listeners count the statements one request executes and
their time, for a few JSON URLs, at each history size. The table shows whether queries
scale with the page or with the history.

Part 2 (live): gunicorn from ``bbweb.launcher.gunicorn_command`` on a free port; requests
per second and latency (median, p95) at concurrency 1 and 8, at the largest size, for
``/json/builders/B/builds?select=-1&…&select=-20``, ``/json/builders``, ``/json/slaves``
and ``/json/builders/B/builds/-1``. The load comes from ApacheBench (``ab -k``, keep-alive)
when it is installed, so the client, written in C, takes little of the CPU the server
needs; else (or with ``--client python``) from Python threads, one ``requests.Session``
each, which on a 2-core machine take about as much CPU as the server.

The last line printed is ``RESULT {...}``: the figures as one JSON object (name -> value),
for a script that collects the figures of several benchmarks.

    .venv/bin/python bench/json_builds.py                        # sizes 50 and 500 per builder
    .venv/bin/python bench/json_builds.py --full                 # sizes 250 and 5000
    .venv/bin/python bench/populate.py --full --basedir /tmp/bb5k
    .venv/bin/python bench/json_builds.py --basedir /tmp/bb5k --sizes 250

Sizes above a master's current history are reached by populating it through the engine
(``populate.py``); sizes below it (a reused, already large ``--basedir``) are measured on a
temporary side master: a temporary SQLite file, or on PostgreSQL a sibling database
``<name>_bench_small`` that is created and dropped again (needs CREATEDB).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from _common import (  # noqa: E402
    BenchMaster,
    Processes,
    add_common_args,
    banner,
    drop_pg_database,
    install_signal_handlers,
    run_load,
    sibling_pg_url,
    start_web,
)
from populate import default_master, populate  # noqa: E402

from bbweb.app import create_app  # noqa: E402

DEFAULT_SIZES = (50, 500)
FULL_SIZES = (250, 5000)
DEFAULT_REQUESTS = 300
FULL_REQUESTS = 2000


def select_url(builder: str, count: int = 20) -> str:
    return f"/json/builders/{builder}/builds?" + "&".join(
        f"select=-{i}" for i in range(1, count + 1))


def live_urls(builder: str) -> dict[str, str]:
    """Figure name -> URL of the live part."""
    return {"select20": select_url(builder), "builders": "/json/builders",
            "slaves": "/json/slaves", "build": f"/json/builders/{builder}/builds/-1"}


@dataclass
class Live:
    """One URL at one concurrency through gunicorn."""

    rate: float
    median_ms: float
    p95_ms: float
    errors: int
    cpu_ms: float = float("nan")  # the gunicorn processes' CPU time per request

    def line(self, name: str, concurrency: int, requests_: int) -> str:
        return (f"  {name:<9} c={concurrency}: {requests_} requests, {self.rate:8.1f} req/s, "
                f"median {self.median_ms:6.2f} ms, p95 {self.p95_ms:6.2f} ms, "
                f"server CPU {self.cpu_ms:5.2f} ms/request, errors {self.errors}")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and every process below it (from /proc). The
    server's CPU per request does not depend on what else the machine runs, where req/s
    and latency do: on a shared machine it is the figure to compare."""
    children: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        child = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(child)
        times[child] = int(fields[11]) + int(fields[12])
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0)
        todo.extend(children.get(current, []))
    return total / os.sysconf("SC_CLK_TCK")


def load_ab(url: str, total: int, concurrency: int) -> Live:
    """``total`` keep-alive GETs of ``url`` from ``concurrency`` ApacheBench connections."""
    with tempfile.NamedTemporaryFile("r", suffix=".csv") as csv:
        run = subprocess.run(["ab", "-q", "-k", "-n", str(total), "-c", str(concurrency),
                              "-e", csv.name, url], capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"ab failed on {url}: {run.stderr.strip() or run.stdout[-500:]}")
        out = run.stdout
        served = dict(line.split(",") for line in csv.read().splitlines()[1:])

    def figure(pattern: str) -> float:
        found = re.search(pattern, out)
        return float(found.group(1)) if found else 0.0

    errors = figure(r"Failed requests:\s+(\d+)") + figure(r"Non-2xx responses:\s+(\d+)")
    return Live(figure(r"Requests per second:\s+([\d.]+)"), float(served["50"]),
                float(served["95"]), int(errors))


def load_python(url: str, total: int, concurrency: int) -> Live:
    """The same from Python threads (``run_load``)."""
    res = run_load(lambda s, i: s.get(url, timeout=60), total, concurrency)
    ms = [x * 1000 for x in res.latencies]
    return Live(res.rate, statistics.median(ms), sorted(ms)[int(0.95 * (len(ms) - 1))],
                len(res.errors))


def urls_for(builder: str) -> list[str]:
    return [
        select_url(builder),
        f"/json/builders/{builder}",
        f"/json/builders/{builder}/builds/_all",
        "/json/slaves",
        "/json/builders",
    ]


@dataclass
class Measure:
    queries: int
    sql_ms: float
    req_ms: float
    status: int
    size_bytes: int
    statements: list[str] = field(default_factory=list)


class QueryCounter:
    """Counts cursor executions (every statement sent to the driver, including SQLite's
    BEGIN) and their time on one engine."""

    def __init__(self, engine: sa.engine.Engine) -> None:
        self.count = 0
        self.seconds = 0.0
        self.statements: list[str] = []
        self._starts: list[float] = []
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def reset(self) -> None:
        self.count, self.seconds, self.statements = 0, 0.0, []

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        self._starts.append(time.perf_counter())

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        self.seconds += time.perf_counter() - self._starts.pop()
        self.count += 1
        self.statements.append(" ".join(statement.split()))


def measure_in_process(master: BenchMaster, urls: list[str], repeat: int) -> dict[str, Measure]:
    app = create_app(master.basedir)
    engine = app.extensions["bbweb"].db.engine
    counter = QueryCounter(engine)
    client = app.test_client()
    out: dict[str, Measure] = {}
    try:
        for url in urls:
            client.get(url)  # warm: template/regex caches, connection pool
            runs = []
            for _ in range(repeat):
                counter.reset()
                t = time.perf_counter()
                resp = client.get(url)
                req = time.perf_counter() - t
                runs.append(Measure(counter.count, counter.seconds * 1000, req * 1000,
                                    resp.status_code, len(resp.data), list(counter.statements)))
            out[url] = Measure(
                queries=int(statistics.median(r.queries for r in runs)),
                sql_ms=statistics.median(r.sql_ms for r in runs),
                req_ms=statistics.median(r.req_ms for r in runs),
                status=runs[-1].status, size_bytes=runs[-1].size_bytes,
                statements=runs[-1].statements)
    finally:
        app.extensions["bbweb"].db.dispose()
    return out


def print_table(urls: list[str], columns: list[tuple[int, dict[str, Measure]]]) -> None:
    sizes = [s for s, _ in columns]
    width = max(len(u) for u in urls)
    short = {u: (u if len(u) <= 60 else u[:44] + "…" + u[-15:]) for u in urls}
    width = min(width, 60)
    head = f"{'URL':<{width}}"
    for label in ("queries", "exec ms", "req ms"):
        head += "".join(f" {label + '@' + str(s):>13}" for s in sizes)
    print(head)
    print("-" * len(head))
    for url in urls:
        line = f"{short[url]:<{width}}"
        line += "".join(f" {m[url].queries:>13d}" for _, m in columns)
        line += "".join(f" {m[url].sql_ms:>13.2f}" for _, m in columns)
        line += "".join(f" {m[url].req_ms:>13.2f}" for _, m in columns)
        print(line)
    bad = [(s, u, m[u].status) for s, m in columns for u in urls if m[u].status != 200]
    for s, u, status in bad:
        print(f"  note: {u} answered {status} at size {s}")
    sys.stdout.flush()


def side_master(master: BenchMaster, args: argparse.Namespace) -> tuple[BenchMaster, object]:
    """A fresh master like ``master`` for a smaller history (see the module docstring)."""
    cleanup: object = None
    db_url = None
    if not master.db.is_sqlite:
        db_url, name = sibling_pg_url(master.cfg.db_url, "_bench_small")
        cleanup = (master.cfg.db_url, name)
    ns = SimpleNamespace(basedir=tempfile.mkdtemp(prefix="bbweb-bench-json-small-"),
                         db_url=db_url, reset_db=False)
    small = default_master(ns, builders=len(master.cfg.builders),  # type: ignore[arg-type]
                           slaves=len(master.cfg.slaves), kind="json-small")
    small.temporary = True
    return small, cleanup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--sizes", default=None,
                        help="comma-separated builds-per-builder sizes for the query table "
                             f"(default {','.join(map(str, DEFAULT_SIZES))}; --full: "
                             f"{','.join(map(str, FULL_SIZES))})")
    parser.add_argument("--requests", type=int, default=None,
                        help=f"requests per concurrency level (default {DEFAULT_REQUESTS}; "
                             f"--full: {FULL_REQUESTS})")
    parser.add_argument("--concurrency", default="1,8", help="levels, default 1,8")
    parser.add_argument("--repeat", type=int, default=7,
                        help="in-process repetitions per URL (median is printed)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--builder", default=None, help="builder B (default: the first)")
    parser.add_argument("--full", action="store_true", help="the issue's full sizes")
    parser.add_argument("--client", choices=("ab", "python"), default=None,
                        help="the live part's load: ApacheBench (default when installed) "
                             "or Python threads")
    parser.add_argument("--show-sql", action="store_true",
                        help="print the statements of each URL at the largest size")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in (args.sizes.split(",") if args.sizes else
                                     (FULL_SIZES if args.full else DEFAULT_SIZES))})
    nreq = args.requests or (FULL_REQUESTS if args.full else DEFAULT_REQUESTS)
    levels = [int(c) for c in args.concurrency.split(",")]
    install_signal_handlers()

    master = default_master(args, kind="json")
    try:
        history = master.history()
        builder = args.builder or next(iter(master.cfg.builders))
        urls = urls_for(builder)
        banner("json_builds", basedir=f"{master.basedir}"
               f"{' (temporary)' if master.temporary else ' (kept)'}",
               database=master.db_label, builders=len(master.cfg.builders),
               history=f"{history} builds per builder now", sizes=sizes, builder=builder)

        columns: list[tuple[int, dict[str, Measure]]] = []
        for size in [s for s in sizes if s < history]:
            small, cleanup = side_master(master, args)
            try:
                print(f"-- size {size}: side master {small.db_label}", flush=True)
                populate(small, size).report(f"  populate to {size}")
                columns.append((size, measure_in_process(small, urls, args.repeat)))
            finally:
                small.close()
                if cleanup:
                    drop_pg_database(*cleanup)  # type: ignore[misc]
        points = sorted({s for s in sizes if s >= history} | ({history} if history else set()))
        for size in points:
            if size > master.history():
                populate(master, size).report(f"-- populate to {size}")
            print(f"-- size {size}: measuring in-process", flush=True)
            columns.append((size, measure_in_process(master, urls, args.repeat)))
        columns.sort(key=lambda c: c[0])

        print()
        print(f"SQL statements per request, time in cursor.execute ('exec ms') and whole "
              f"request ('req ms'); median of {args.repeat}; B = {builder}; @N = N builds per "
              f"builder")
        print_table(urls, columns)
        if args.show_sql:
            for url in urls:
                print(f"\n{url}:")
                for st in columns[-1][1][url].statements:
                    print(f"   {st[:160]}")

        size = columns[-1][0]
        client = args.client or ("ab" if shutil.which("ab") else "python")
        load = load_ab if client == "ab" else load_python
        print()
        print(f"gunicorn ({args.web_workers} processes x 16 threads) at {size} builds per "
              f"builder; load from {client}; B = {builder}")
        result: dict[str, float | int | str] = {"client": client, "builds_per_builder": size}
        largest = columns[-1][1]
        for name, url in (("select20", select_url(builder)), ("builders", "/json/builders"),
                          ("slaves", "/json/slaves")):
            if url in largest:
                result[f"json_{name}_queries"] = largest[url].queries
        with Processes(master.basedir) as procs:
            base = start_web(master, procs, workers=args.web_workers)
            body = requests.get(base + select_url(builder), timeout=60).json()
            if len(body) != 20:
                print(f"  note: the document has {len(body)} builds, not 20")
            for name, url in live_urls(builder).items():
                load(base + url, 50, 2)  # warm-up: both processes, every cache
                for c in levels:
                    cpu = tree_cpu_seconds(procs.procs["web"].pid)
                    live = load(base + url, nreq, c)
                    live.cpu_ms = (tree_cpu_seconds(procs.procs["web"].pid) - cpu) / nreq * 1000
                    print(live.line(name, c, nreq), flush=True)
                    result[f"json_{name}_c{c}_rps"] = round(live.rate, 1)
                    result[f"json_{name}_c{c}_median_ms"] = round(live.median_ms, 2)
                    result[f"json_{name}_c{c}_server_cpu_ms"] = round(live.cpu_ms, 2)
                    if live.errors:
                        result[f"json_{name}_c{c}_errors"] = live.errors
        if not master.temporary:
            print(f"kept: --basedir {master.basedir}")
    finally:
        master.close()
    print("RESULT " + json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
