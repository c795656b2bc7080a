"""`bbweb create-master` + `bbweb start`: a newcomer sees a build happen, Ctrl-C stops all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import requests
import sqlalchemy as sa

from bbweb.db.connection import Database
from bbweb.db.schema import builds
from bbweb.mastercfg.master import load_master_config
from tests.e2e.conftest import free_port, wait_for


def processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(pid))
    return found


def test_create_master_and_start(tmp_path):
    basedir = tmp_path / "newcomer"
    port = free_port()
    subprocess.run([sys.executable, "-m", "bbweb.cli", "create-master", str(basedir),
                    "--port", str(port)], check=True, capture_output=True, timeout=60)
    log = (tmp_path / "start.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bbweb.cli", "start", str(basedir)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    db = Database(load_master_config(basedir).db_url)
    try:
        def healthy() -> bool:
            assert proc.poll() is None, (tmp_path / "start.log").read_text()
            try:
                return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy
                return False

        wait_for(healthy, 60, what="bbweb start to serve")

        def finished_build():
            with db.read() as conn:
                return conn.execute(sa.select(builds).where(builds.c.finished_at.isnot(None))
                                    ).first()

        build = wait_for(finished_build, 90, what="the sample's first (Periodic) build")
        assert build.results == 0, (tmp_path / "start.log").read_text()
        assert len(processes_mentioning(str(basedir))) >= 3  # web, daemon, worker
    finally:
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C delivers
        code = proc.wait(timeout=60)
        db.dispose()
    output = (tmp_path / "start.log").read_text()
    assert code == 0, output
    assert f"bbweb is running at http://127.0.0.1:{port}/" in output
    deadline = time.monotonic() + 10
    while processes_mentioning(str(basedir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(basedir)) == []
    try:
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
        raise AssertionError("the web server is still answering after Ctrl-C")
    except requests.ConnectionError:
        pass


PROBED_CFG = """
import json, os, sys
from bbweb.config import *
c = BuildmasterConfig = {}
c['slaves'] = [BuildSlave('local-worker', 'pw')]
c['builders'] = [BuilderConfig(name='b', slavenames=['local-worker'],
                               factory=BuildFactory([ShellCommand(command=['true'])]))]


class ModulesProbe:
    # an event consumer: the daemon opens it, in whatever process runs the daemon
    consumer_name = 'test.modules'

    def open(self):
        with open('daemon-modules.json', 'w') as fh:
            json.dump({'pid': os.getpid(), 'modules': sorted(sys.modules)}, fh)

    def handle_event(self, event):
        pass


c['status'] = [WebStatus(http_port='tcp:PORT:interface=127.0.0.1'), ModulesProbe()]
"""

# what the web server needs and the daemon does not
WEB_ONLY = ("flask", "werkzeug", "jinja2", "gunicorn", "flask_login", "passlib", "bbweb.web",
            "bbweb.app", "alembic", "mako")


def test_start_runs_the_daemon_in_its_own_process_without_the_web(tmp_path):
    """``bbweb start`` becomes the daemon's process (same pid, a fresh interpreter): it
    holds neither the web's modules nor what the start-up checks loaded (Alembic, Flask);
    the web server runs one gunicorn worker by default."""
    basedir = tmp_path / "probed"
    basedir.mkdir()
    port = free_port()
    (basedir / "master.cfg").write_text(PROBED_CFG.replace("PORT", str(port)))
    log = (tmp_path / "start.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bbweb.cli", "start", str(basedir)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    probe = basedir / "daemon-modules.json"
    try:
        def probed() -> bool:
            assert proc.poll() is None, (tmp_path / "start.log").read_text()
            return probe.exists() and probe.stat().st_size > 0

        wait_for(probed, 60, what="the daemon to open its consumers")
        found = json.loads(probe.read_text())
        assert found["pid"] == proc.pid
        modules = set(found["modules"])
        assert "bbweb.daemon.main" in modules
        loaded = [m for m in modules if m.split(".")[0] in WEB_ONLY
                  or any(m == w or m.startswith(w + ".") for w in WEB_ONLY)]
        assert loaded == []

        def web_workers() -> list[int]:
            arbiters = [p for p in processes_mentioning("gunicorn")
                        if parent_of(p) == proc.pid]
            return [p for p in processes_mentioning("gunicorn") if parent_of(p) in arbiters]

        assert wait_for(lambda: len(web_workers()) == 1, 60, what="gunicorn's worker")
    finally:
        os.kill(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 0, (tmp_path / "start.log").read_text()


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None
