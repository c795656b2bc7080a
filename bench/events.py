"""How fast the live status stream is: the time from a step finishing (its transaction
committed) to its ``step.finished`` line arriving on a ``/json/events`` stream, through
real gunicorn with bbweb's settings.

Builds are played through the engine in this process (a step: log, finish), one step at a
time; a reader thread holds the stream open and notes when each line arrives. With
``--idle N`` another N stream clients stay connected meanwhile (each its own socket, the
kind a browser tab holds), to show what idle clients cost the one that is measured. The
last line is ``RESULT {json}`` (milliseconds; the goal is under 100 ms at p95).

    .venv/bin/python bench/events.py                  # 60 steps, 50 idle clients
    .venv/bin/python bench/events.py --full           # 300 steps, 150 idle clients
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _common import (
    Processes,
    add_common_args,
    banner,
    bench_builders,
    install_signal_handlers,
    open_master,
    percentile,
    start_web,
)

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from bbweb.engine import builds as eb  # noqa: E402
from bbweb.engine import slaves as es  # noqa: E402
from bbweb.engine.force import force_build  # noqa: E402
from bbweb.statuslog import parse_sse  # noqa: E402

GOAL_MS = 100.0


class Reader:
    """One stream, read in a thread: the arrival time of each ``step.finished`` by step id."""

    def __init__(self, url: str) -> None:
        self.arrived: dict[int, float] = {}
        self.cond = threading.Condition()
        for _ in range(50):  # a full process answers 503: another connection may not
            self.resp = requests.get(url + "/json/events?kind=steps", stream=True,
                                     headers={"Accept": "text/event-stream"},
                                     timeout=(10, 120))
            if self.resp.status_code != 503:
                break
            self.resp.close()
        self.resp.raise_for_status()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            for event in parse_sse(self.resp.iter_lines(decode_unicode=True)):
                if event.kind == "step.finished":
                    with self.cond:
                        self.arrived[int(event.data["stepid"])] = time.monotonic()
                        self.cond.notify_all()
        except (requests.RequestException, ValueError, AttributeError):
            return

    def wait(self, stepid: int, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while stepid not in self.arrived:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"step {stepid}'s step.finished never arrived")
                self.cond.wait(left)
            return self.arrived[stepid]

    def close(self) -> None:
        self.resp.close()


def idle_clients(url: str, count: int) -> tuple[list[socket.socket], int]:
    """``count`` stream clients that only listen; returns them and how many got a stream
    (the others were told 503 by a full process)."""
    host, port = url.split("//", 1)[1].split(":")
    socks, streaming = [], 0
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=30)
        sock.sendall(b"GET /json/events HTTP/1.1\r\nHost: bench\r\n"
                     b"Accept: text/event-stream\r\n\r\n")
        head = sock.recv(4096)
        streaming += head.startswith(b"HTTP/1.1 200")
        socks.append(sock)
    return socks, streaming


def web_rss_mb(procs: Processes) -> float:
    """Resident memory of the gunicorn arbiter and its worker processes, in MB."""
    pid = procs.procs["web"].pid
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def run_steps(master: Any, reader: Reader, count: int) -> list[float]:
    cfg = master.cfg
    builder = next(iter(cfg.builders))
    with master.db.write() as conn:
        sid = es.slave_connected(conn, next(iter(cfg.slaves)), {})
    latencies: list[float] = []
    while len(latencies) < count:
        with master.db.write() as conn:
            force_build(conn, cfg, [builder], scheduler="force")
        with master.db.write() as conn:
            claimed = eb.claim_build_request(conn, cfg, next(iter(cfg.slaves)), sid)
        assert claimed is not None
        while True:
            with master.db.write() as conn:
                spec = eb.next_step(conn, cfg, claimed.buildid)
            if spec is None:
                break
            with master.db.write() as conn:
                eb.append_step_log(conn, cfg, spec["id"], "stdio", [("o", "ok\n")])
            with master.db.write() as conn:
                eb.finish_step(conn, cfg, spec["id"], 0)
            committed = time.monotonic()
            latencies.append((reader.wait(spec["id"]) - committed) * 1000)
            time.sleep(0.02)  # steps a little apart, as real ones are
    return latencies[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--steps", type=int, default=None, help="steps measured (60)")
    parser.add_argument("--idle", type=int, default=None,
                        help="idle stream clients connected meanwhile (50)")
    parser.add_argument("--full", action="store_true", help="300 steps, 150 idle clients")
    args = parser.parse_args()
    steps = args.steps or (300 if args.full else 60)
    idle = args.idle if args.idle is not None else (150 if args.full else 50)
    install_signal_handlers()
    slaves = ["slave-0", "slave-1"]
    master = open_master(args.basedir, args.db_url, builders=bench_builders(1, slaves),
                         slaves=slaves, reset_db=args.reset_db, kind="events")
    banner("live status stream: step finished -> SSE line", db=master.db_label,
           steps=steps, idle_clients=idle)
    result: dict[str, Any] = {"bench": "events", "db": master.db_label, "steps": steps,
                              "idle_clients": idle, "goal_ms": GOAL_MS}
    try:
        with Processes(master.basedir) as procs:
            url = start_web(master, procs)
            rss_before = web_rss_mb(procs)
            socks, streaming = idle_clients(url, idle)
            rss_idle = web_rss_mb(procs)
            reader = Reader(url)
            try:
                lat = run_steps(master, reader, steps)
            finally:
                reader.close()
                for sock in socks:
                    sock.close()
            result.update({
                "idle_streaming": streaming,
                "web_rss_mb": rss_before, "web_rss_mb_with_idle": rss_idle,
                "p50_ms": round(percentile(lat, 50), 1),
                "p95_ms": round(percentile(lat, 95), 1),
                "max_ms": round(max(lat), 1),
                "mean_ms": round(sum(lat) / len(lat), 1),
            })
            result["goal_met"] = result["p95_ms"] < GOAL_MS
            print(f"step finished -> SSE line: p50 {result['p50_ms']} ms, p95 "
                  f"{result['p95_ms']} ms, max {result['max_ms']} ms over {steps} steps "
                  f"({streaming} of {idle} idle clients streaming)")
    finally:
        master.close()
    print("RESULT " + json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
