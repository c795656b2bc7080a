"""What build mail costs: mails per second through a real SMTP server, and the master
daemon's extra CPU per finished build with a MailNotifier on.

1. **Mails per second.** B finished builds are made through the engine; a MailNotifier
   (mode ``all``, the default message, two recipients) is handed their events in order, as
   the daemon would, and sends each mail to a local aiosmtpd server (plain SMTP, then
   STARTTLS with a self-signed certificate made by ``openssl``). Printed: mails/s and
   milliseconds per mail (deciding, composing, recording the attempt, SMTP).
2. **Daemon CPU per build.** The real daemon (``python -m bbweb.cli master BASEDIR``) runs
   while B builds finish, once without and once with a MailNotifier in master.cfg; its
   CPU time (user + system, from /proc) is read once it has caught up with the events.
   Printed: CPU ms per finished build with and without mail, and the difference.

aiosmtpd comes with the ``test`` extra (``pip install -e '.[test]'``).

    .venv/bin/python bench/mail.py            # 200 builds
    .venv/bin/python bench/mail.py --full     # 2000 builds
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402
from _common import cpu_seconds, engine_master, free_port, play_build  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402

from bbweb.db.connection import Database  # noqa: E402
from bbweb.db.schema import consumer_cursors  # noqa: E402
from bbweb.engine import events  # noqa: E402
from bbweb.status.mail import MailNotifier  # noqa: E402

CFG = """
from bbweb.config import *
from bbweb.status.mail import MailNotifier
c = BuildmasterConfig = {}
c['title'] = 'Mail bench'
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
NOTIFIER = """
c['status'].append(MailNotifier(fromaddr='bench@example.org', mode='all',
                                relayhost='127.0.0.1', smtpPort=PORT, lookup='example.org',
                                extraRecipients=['list@example.org']))
"""


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, _server: Any, _session: Any, _envelope: Any) -> str:
        with self.lock:
            self.count += 1
        return "250 OK"


def smtp_server(tls_dir: Path | None) -> tuple[Controller, Counter, int]:
    counter, port = Counter(), free_port()
    kwargs: dict[str, Any] = {}
    if tls_dir is not None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(tls_dir / "cert.pem"), str(tls_dir / "key.pem"))
        kwargs = {"tls_context": ctx, "require_starttls": True}
    controller = Controller(counter, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, counter, port


def make_master(basedir: Path, extra: str = "") -> tuple[Any, Database]:
    return engine_master(basedir, CFG + extra)


def run_builds(cfg: Any, db: Database, count: int) -> None:
    """``count`` builds, forced and played through the engine like a worker would."""
    t = time.time()
    for i in range(count):
        t = play_build(cfg, db, f"builder-{i % 4}", now=t, result=(i // 3) % 2,
                       owner=f"dev{i % 7}", log_text="ok\n" * 20)


def mails_per_second(workdir: Path, builds: int, tls_dir: Path | None) -> None:
    controller, counter, port = smtp_server(tls_dir)
    try:
        cfg, db = make_master(workdir / ("direct-tls" if tls_dir else "direct"))
        run_builds(cfg, db, builds)
        kwargs: dict[str, Any] = {}
        if tls_dir is not None:
            kwargs = {"useTls": True, "smtpCAFile": str(tls_dir / "cert.pem")}
        notifier = MailNotifier("bench@example.org", mode="all", relayhost="127.0.0.1",
                                smtpPort=port, lookup="example.org",
                                extraRecipients=["list@example.org"], **kwargs)
        notifier.bind(db, cfg)
        with db.read() as conn:
            batch = events.read_events(conn, 0, 1_000_000)
        start = time.perf_counter()
        for event in batch:
            notifier.handle_event(event)
        elapsed = time.perf_counter() - start
        notifier.close()
        db.dispose()
    finally:
        controller.stop()
    label = "STARTTLS" if tls_dir else "plain SMTP"
    print(f"{label:>10}: {counter.count} mails in {elapsed:.2f}s = "
          f"{counter.count / elapsed:.1f} mails/s, {1000 * elapsed / counter.count:.1f} ms "
          "per mail")


def daemon_cpu(workdir: Path, builds: int, with_mail: bool) -> tuple[float, int]:
    """CPU seconds the daemon used while ``builds`` builds finished (and mails sent)."""
    controller, counter, port = smtp_server(None)
    name = "daemon-mail" if with_mail else "daemon-plain"
    cfg, db = make_master(workdir / name, NOTIFIER.replace("PORT", str(port))
                          if with_mail else "")
    proc = subprocess.Popen([sys.executable, "-m", "bbweb.cli", "master", str(cfg.basedir)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while with_mail and time.monotonic() < deadline:  # the notifier has its cursor
            with db.read() as conn:
                if conn.execute(sa.select(consumer_cursors.c.consumer)).first():
                    break
            time.sleep(0.1)
        time.sleep(2)  # start-up finished: count from a quiet daemon
        before = cpu_seconds(proc.pid)
        run_builds(cfg, db, builds)
        deadline = time.monotonic() + 600
        while with_mail and counter.count < builds and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        used = cpu_seconds(proc.pid) - before
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        controller.stop()
        db.dispose()
    return used, counter.count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="2000 builds instead of 200")
    parser.add_argument("--builds", type=int, default=None)
    args = parser.parse_args()
    builds = args.builds or (2000 if args.full else 200)
    workdir = Path(tempfile.mkdtemp(prefix="bbweb-bench-mail-"))
    try:
        print(f"bench/mail.py: {builds} builds, SQLite, aiosmtpd on 127.0.0.1")
        tls_dir = workdir / "tls"
        tls_dir.mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(tls_dir / "key.pem"), "-out", str(tls_dir / "cert.pem"),
                        "-days", "1", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        mails_per_second(workdir, builds, None)
        mails_per_second(workdir, builds, tls_dir)
        plain, _ = daemon_cpu(workdir, builds, with_mail=False)
        mailing, sent = daemon_cpu(workdir, builds, with_mail=True)
        per = 1000 / builds
        print(f"daemon CPU while {builds} builds finished:")
        print(f"  without mail: {plain:.2f}s = {plain * per:.2f} ms per build")
        print(f"  with mail:    {mailing:.2f}s = {mailing * per:.2f} ms per build "
              f"({sent} mails)")
        print(f"  extra per finished build with mail on: {(mailing - plain) * per:.2f} ms")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
