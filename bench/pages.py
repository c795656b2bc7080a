"""Status pages against build history, and streaming a large log.

Part 1 (in-process, Flask test client): server time (median and p95 of ``--repeat``
requests) and SQL statements per request for ``/builders``, ``/builders/B``, a build page
and ``/one_line_per_build``, on the master in ``--basedir`` (populate it first, e.g.
``bench/populate.py --full --basedir /tmp/bb5k`` for 20 x 5,000 builds).

Part 2 (live gunicorn): a build whose step log is ``--log-mb`` megabytes, written through
the engine in 64 KiB chunks; then ``…/logs/stdio/text`` and the HTML view are downloaded
while the serving gunicorn worker's resident memory is sampled: MB/s and peak RSS growth.

    .venv/bin/python bench/pages.py --basedir /tmp/bb5k            # 100 MB log
    .venv/bin/python bench/pages.py --basedir /tmp/bb5k --full     # 1 GB log
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from _common import (  # noqa: E402
    Processes,
    add_common_args,
    banner,
    bench_builders,
    install_signal_handlers,
    open_master,
    percentile,
    result,
    start_web,
)

from bbweb.app import create_app  # noqa: E402
from bbweb.db.schema import builders, builds  # noqa: E402
from bbweb.engine import builds as eb  # noqa: E402
from bbweb.engine import slaves as es  # noqa: E402
from bbweb.engine.force import force_build  # noqa: E402

CHUNK = 64 * 1024


def count_statements(app, url: str, repeat: int) -> tuple[int, list[float]]:  # type: ignore[no-untyped-def]
    engine = app.extensions["bbweb"].db.engine
    seen = [0]

    def on_execute(*_args: object) -> None:
        seen[0] += 1

    client = app.test_client()
    client.get(url)  # warm caches and templates
    sa.event.listen(engine, "before_cursor_execute", on_execute)
    try:
        seen[0] = 0
        resp = client.get(url)
        queries = seen[0]
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)
    if resp.status_code != 200:
        raise SystemExit(f"{url} answered {resp.status_code}")
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        client.get(url).get_data()
        times.append((time.perf_counter() - t) * 1000)
    return queries, times


def page_table(master, repeat: int) -> None:  # type: ignore[no-untyped-def]
    with master.db.read() as conn:
        b = conn.execute(sa.select(builders.c.name, builders.c.id)
                         .order_by(builders.c.name).limit(1)).one()
        number = conn.execute(sa.select(sa.func.max(builds.c.number)).where(
            builds.c.builderid == b.id, builds.c.finished_at.isnot(None))).scalar()
    app = create_app(master.basedir)
    urls = ["/builders", f"/builders/{b.name}", f"/builders/{b.name}/builds/{number}",
            "/one_line_per_build", "/buildslaves", "/buildslaves/slave-0"]
    print(f"\npages at {master.history()} builds per builder "
          f"(server time in-process, {repeat} requests each)")
    print(f"{'URL':40} {'queries':>8} {'median ms':>10} {'p95 ms':>8}")
    for url in urls:
        queries, times = count_statements(app, url, repeat)
        print(f"{url:40} {queries:>8} {statistics.median(times):>10.2f} "
              f"{percentile(times, 95):>8.2f}")
    app.extensions["bbweb"].db.dispose()


def write_big_log(master, megabytes: int) -> tuple[str, int, str]:  # type: ignore[no-untyped-def]
    """A finished build of the first builder whose first step logged ``megabytes`` MB."""
    cfg = master.cfg
    name = sorted(cfg.builders)[0]
    slave = cfg.builders[name].slavenames[0]
    with master.db.write() as conn:
        force_build(conn, cfg, [name], reason="big log bench", owner="bench",
                    scheduler="force")
        sid = es.slave_connected(conn, slave, {})
    with master.db.write() as conn:
        claimed = eb.claim_build_request(conn, cfg, slave, sid)
    assert claimed is not None, "no request to claim (is a worker running on this master?)"
    with master.db.write() as conn:
        step = eb.next_step(conn, cfg, claimed.buildid)
    line = "".join(f"{i:05d} the quick brown fox jumps over the lazy dog\n"
                   for i in range(CHUNK // 50))
    chunk = (line * (CHUNK // len(line) + 1))[:CHUNK]
    total = megabytes * 1024 * 1024
    written = 0
    t0 = time.perf_counter()
    while written < total:
        with master.db.write() as conn:
            for _ in range(16):
                eb.append_step_log(conn, cfg, step["id"], "stdio",
                                   [("o" if written % (CHUNK * 7) else "e", chunk)])
                written += len(chunk)
    with master.db.write() as conn:
        eb.finish_step(conn, cfg, step["id"], 0)
        while eb.next_step(conn, cfg, claimed.buildid) is not None:
            pass
    print(f"\nwrote a {written / 2**20:.0f} MB log through the engine in "
          f"{time.perf_counter() - t0:.1f} s")
    return name, claimed.number, step["name"]


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def worker_pids(procs: Processes) -> list[int]:
    parent = procs.procs["web"].pid
    out = []
    for pid in Path("/proc").iterdir():
        if pid.name.isdigit():
            try:
                stat = (pid / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == parent:
                out.append(int(pid.name))
    return out


def stream(url: str, pids: list[int]) -> tuple[float, float]:
    """Download ``url``; (MB/s, the serving processes' largest RSS growth in MiB)."""
    before = {p: rss_kb(p) for p in pids}
    peak = dict(before)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            for p in pids:
                peak[p] = max(peak[p], rss_kb(p))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    size = 0
    with requests.get(url, stream=True, timeout=600) as resp:
        resp.raise_for_status()
        for part in resp.iter_content(1 << 20):
            size += len(part)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    growth = max(peak[p] - before[p] for p in pids) / 1024
    print(f"  {url.rsplit('/logs/', 1)[1]:12} {size / 2**20:8.0f} MB in {wall:6.1f} s = "
          f"{size / 2**20 / wall:7.1f} MB/s; serving process RSS grew by at most "
          f"{growth:.1f} MB")
    return size / 2**20 / wall, growth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--log-mb", type=int, default=100)
    parser.add_argument("--full", action="store_true", help="a 1 GB log")
    parser.add_argument("--log-only", action="store_true",
                        help="only the log download (no page timings)")
    args = parser.parse_args()
    if args.full:
        args.log_mb = 1024
    install_signal_handlers()
    slaves = [f"slave-{i}" for i in range(4)]
    master = open_master(args.basedir, args.db_url, builders=bench_builders(20, slaves),
                         slaves=slaves, reset_db=args.reset_db, kind="pages")
    banner("pages", database=master.db_label, history=master.history())
    try:
        if not args.log_only:
            page_table(master, args.repeat)
        name, number, stepname = write_big_log(master, args.log_mb)
        logdir = master.basedir / "bench-logs"
        logdir.mkdir(exist_ok=True)
        with Processes(logdir) as procs:
            url = start_web(master, procs, workers=1)
            pids = worker_pids(procs)
            base = f"{url}/builders/{name}/builds/{number}/steps/{stepname}/logs/stdio"
            print("streaming (one gunicorn worker):")
            text_rate, text_growth = stream(base + "/text", pids)
            html_rate, html_growth = stream(base, pids)
        result({"log_download_mib": args.log_mb, "log_download_mb_s": round(text_rate, 1),
                "log_download_growth_mib": round(text_growth, 1),
                "log_download_html_mb_s": round(html_rate, 1),
                "log_download_html_growth_mib": round(html_growth, 1)})
    finally:
        master.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
