"""What the IRC bot sustains on a real IRC server (Debian's ngircd on 127.0.0.1).

(Named irc_bot.py, not irc.py: a script directory comes first on sys.path, and a
bench/irc.py would hide the ``irc`` package the bot is built on.)

1. **Announcements per second.** B finished builds are made through the engine; the bot
   (``words.IRC`` with ``notify_events=['finished']``) is handed their events in order, as
   the daemon does, and announces each in the channel, where a real ``irc`` client counts
   them. Run once with the default flood control (5 lines at once, then 2 a second) and
   once with ``linesPerSecond=20``; printed: announcements/s and whether the server kept
   the bot (a flooding client is disconnected with "Excess Flood").
2. **Build finished → channel line.** The real daemon (``python -m bbweb.cli master``)
   runs the bot; builds finish one at a time and the time from the engine's commit of
   ``build.finished`` to the announcement arriving at the client is measured (median,
   95th percentile, max).

The last line is ``RESULT {json}`` with the figures.

    .venv/bin/python bench/irc_bot.py              # 40 builds, 10 latency samples
    .venv/bin/python bench/irc_bot.py --full       # 200 builds, 40 latency samples
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402
from _common import engine_master, play_build  # noqa: E402

from bbweb.db.connection import Database  # noqa: E402
from bbweb.db.schema import consumer_cursors  # noqa: E402
from bbweb.engine import events  # noqa: E402
from bbweb.status.words import IRC  # noqa: E402
from tests.support.ircd import CHANNEL, CHANNEL_KEY, IrcServer, IrcUser  # noqa: E402

CFG = """
from bbweb.config import *
from bbweb.status import words
c = BuildmasterConfig = {}
c['title'] = 'IRC bench'
c['buildbotURL'] = 'http://bench.example.org/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('slave1', 'pw')]
f = BuildFactory([ShellCommand(name='compile', command=['make'])])
c['builders'] = [BuilderConfig(name='builder-%d' % i, slavenames=['slave1'], factory=f)
                 for i in range(4)]
c['schedulers'] = [ForceScheduler(name='force',
                                  builderNames=['builder-%d' % i for i in range(4)])]
c['status'] = []
"""
BOT = """
c['status'].append(words.IRC('127.0.0.1', 'benchbot', [{'channel': CHAN, 'password': KEY}],
                             port=PORT, notify_events=['finished'], useColors=False,
                             lostDelay=1, failedDelay=1))
"""


def make_master(basedir: Path, extra: str = "") -> tuple[Any, Database]:
    return engine_master(basedir, CFG + extra)


def one_build(cfg: Any, db: Database, i: int, t: float) -> None:
    """Force, claim and run one build through the engine, as a worker would."""
    play_build(cfg, db, f"builder-{i % 4}", now=t, result=i % 2, owner=f"dev{i % 7}",
               step_seconds=0.0)


def announcements(user: IrcUser, nick: str, after: int) -> int:
    return sum(1 for ln in user.messages_from(nick, after) if "is complete" in ln.text)


def announcements_per_second(server: IrcServer, workdir: Path, builds: int,
                             lines_per_second: float | None) -> dict[str, Any]:
    cfg, db = make_master(workdir / f"direct-{lines_per_second}")
    watcher = IrcUser(server, f"watch{int(lines_per_second or 0)}")
    watcher.join()
    extra = {} if lines_per_second is None else {"linesPerSecond": lines_per_second}
    bot = IRC("127.0.0.1", f"bench{int(lines_per_second or 0)}",
              [{"channel": CHANNEL, "password": CHANNEL_KEY}], port=server.port,
              notify_events=["finished"], useColors=False, lostDelay=1, failedDelay=1,
              **extra)
    bot.bind(db, cfg)
    bot.open()
    try:
        assert bot.bot is not None and bot.bot.wait_ready(30), "the bot did not sign on"
        t = time.time()  # builds finishing while the bot is there (not a backlog)
        for i in range(builds):
            one_build(cfg, db, i, t + i)
        with db.read() as conn:
            batch = events.read_events(conn, 0, 1_000_000)
        mark = watcher.mark()
        start = time.perf_counter()
        for event in batch:
            bot.handle_event(event)
        deadline = time.monotonic() + float(os.environ.get("BENCH_IRC_WAIT", "120"))
        while announcements(watcher, bot.nick, mark) < builds and time.monotonic() < deadline:
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
        got = announcements(watcher, bot.nick, mark)
        kept = bot.bot.connections == 1 and bot.bot.ready.is_set()
    finally:
        bot.close()
        watcher.quit()
        db.dispose()
    rate = got / elapsed
    label = "default flood control" if lines_per_second is None else \
        f"linesPerSecond={lines_per_second:g}"
    print(f"{label:>24}: {got}/{builds} announcements in {elapsed:.2f}s = {rate:.1f}/s; "
          f"{'still connected' if kept else 'DISCONNECTED by the server'}")
    return {"announcements": got, "seconds": round(elapsed, 3), "per_second": round(rate, 2),
            "kept_connection": kept}


def latency(server: IrcServer, workdir: Path, samples: int) -> dict[str, Any]:
    """Seconds from build.finished's commit to the line in the channel, through the real
    daemon."""
    cfg, db = make_master(workdir / "daemon", BOT.replace("PORT", str(server.port))
                          .replace("CHAN", repr(CHANNEL)).replace("KEY", repr(CHANNEL_KEY)))
    watcher = IrcUser(server, "latency")
    watcher.join()
    proc = subprocess.Popen([sys.executable, "-m", "bbweb.cli", "master", str(cfg.basedir)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    times: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with db.read() as conn:
                if conn.execute(sa.select(consumer_cursors.c.consumer)).first():
                    break
            time.sleep(0.1)
        watcher.wait_for(lambda ln: ln.kind == "join" and ln.nick == "benchbot", 60,
                         "the daemon's bot")
        t = time.time()
        for i in range(samples):
            mark = watcher.mark()
            one_build(cfg, db, i, t + i)
            done = time.perf_counter()
            watcher.wait_for(lambda ln: ln.nick == "benchbot" and "is complete" in ln.text,
                             60, "the announcement", mark)
            times.append(time.perf_counter() - done)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        watcher.quit()
        db.dispose()
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    result = {"samples": len(times), "median_ms": round(1000 * statistics.median(times), 1),
              "p95_ms": round(1000 * p95, 1), "max_ms": round(1000 * times[-1], 1)}
    print(f"build finished -> channel line (daemon): median {result['median_ms']} ms, "
          f"p95 {result['p95_ms']} ms, max {result['max_ms']} ms over {len(times)} builds")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--full", action="store_true", help="200 builds, 40 samples")
    parser.add_argument("--builds", type=int, default=None)
    parser.add_argument("--samples", type=int, default=None)
    args = parser.parse_args()
    builds = args.builds or (200 if args.full else 40)
    samples = args.samples or (40 if args.full else 10)
    workdir = Path(tempfile.mkdtemp(prefix="bbweb-bench-irc-"))
    server = IrcServer(workdir, services=False).start()
    try:
        print(f"bench/irc_bot.py: {builds} builds, SQLite, ngircd on 127.0.0.1:{server.port}")
        default = announcements_per_second(server, workdir, builds, None)
        fast = announcements_per_second(server, workdir, builds, 20.0)
        lat = latency(server, workdir, samples)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("RESULT " + json.dumps({"builds": builds, "default_flood_control": default,
                                  "lines_per_second_20": fast, "latency": lat},
                                 sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
