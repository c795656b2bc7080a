"""What HTTP status push costs: packets per second to a local receiver.

B builds (two steps each: 8 packets a build, plus the request and buildset packets) are
made through the engine on SQLite; an ``HttpStatusPush`` is then handed their events in
order, as the daemon would, and posts the packets to a receiver in a process of its own
(a stdlib HTTP server that parses the ``packets`` form field, counts and answers 200).
Measured for the default ``chunkSize=200``, for ``chunkSize=1`` (what 0.8 sent after a
failure) and for ``format='json'`` with an HMAC signature. Each run includes making the
packets from the database (the build documents), recording each request on
/notifications, and HTTP.

    .venv/bin/python bench/push.py               # 200 builds
    .venv/bin/python bench/push.py --full        # 2000 builds

The last line is ``RESULT {json}`` with the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import requests  # noqa: E402
from _common import engine_master, free_port, play_build  # noqa: E402

from bbweb.db.connection import Database  # noqa: E402
from bbweb.engine import events  # noqa: E402
from bbweb.status.status_push import HttpStatusPush  # noqa: E402

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Push bench'
c['buildbotURL'] = 'http://bench.example.org/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('slave1', 'pw')]
f = BuildFactory([ShellCommand(name='compile', command=['make']),
                  ShellCommand(name='test', command=['make', 'test'])])
c['builders'] = [BuilderConfig(name='builder-%d' % i, slavenames=['slave1'], factory=f)
                 for i in range(4)]
c['schedulers'] = [ForceScheduler(name='force',
                                  builderNames=['builder-%d' % i for i in range(4)])]
c['status'] = []
"""


# -- the receiver (run as: bench/push.py --receiver PORT) -----------------------------------

def serve(port: int) -> None:
    counts = {"packets": 0, "requests": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Type", "").startswith("application/json"):
                packets = json.loads(raw)
            else:
                packets = json.loads(parse_qs(raw.decode("ascii"))["packets"][0])
            counts["packets"] += len(packets)
            counts["requests"] += 1
            self._answer(b"ok")

        def do_GET(self) -> None:
            self._answer(json.dumps(counts).encode())
            if self.path == "/reset":
                counts.update(packets=0, requests=0)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.serve_forever()


# -- the measurement -----------------------------------------------------------------------

def run_builds(cfg: Any, db: Database, count: int) -> None:
    t = time.time()
    for i in range(count):
        t = play_build(cfg, db, f"builder-{i % 4}", now=t, result=(i // 3) % 2,
                       log_text="ok\n" * 20)


def measure(cfg: Any, db: Database, url: str, name: str, label: str, **options: Any
            ) -> dict[str, Any]:
    requests.get(url + "reset", timeout=10)
    notifier = HttpStatusPush(url, bufferDelay=0, name=name, **options)
    notifier.bind(db, cfg)
    with db.read() as conn:
        batch = events.read_events(conn, 0, 10_000_000)
    start = time.perf_counter()
    for event in batch:
        notifier.handle_event(event)
    elapsed = time.perf_counter() - start
    notifier.close()
    counts = requests.get(url + "count", timeout=10).json()
    rate = counts["packets"] / elapsed if elapsed else 0.0
    print(f"{label:>14}: {counts['packets']} packets in {counts['requests']} requests, "
          f"{elapsed:.2f}s = {rate:.0f} packets/s")
    return {"packets": counts["packets"], "requests": counts["requests"],
            "seconds": round(elapsed, 3), "packets_per_second": round(rate, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="2000 builds instead of 200")
    parser.add_argument("--builds", type=int, default=None)
    parser.add_argument("--receiver", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver is not None:
        serve(args.receiver)
        return 0
    builds = args.builds or (2000 if args.full else 200)
    workdir = Path(tempfile.mkdtemp(prefix="bbweb-bench-push-"))
    port = free_port()
    receiver = subprocess.Popen([sys.executable, __file__, "--receiver", str(port)],
                                cwd=REPO)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url + "count", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        cfg, db = engine_master(workdir / "master", CFG)
        print(f"bench/push.py: {builds} builds, SQLite, a receiver process on 127.0.0.1")
        run_builds(cfg, db, builds)
        result = {"builds": builds,
                  "chunk200": measure(cfg, db, url, "chunk200", "chunkSize=200"),
                  "chunk1": measure(cfg, db, url, "chunk1", "chunkSize=1", chunkSize=1),
                  "json_signed": measure(cfg, db, url, "json", "json+secret",
                                         format="json", secret="bench-secret")}
        db.dispose()
    finally:
        receiver.terminate()
        receiver.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    print("RESULT " + json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
