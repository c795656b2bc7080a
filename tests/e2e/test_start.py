"""`bbweb create-master` + `bbweb start`: a newcomer sees a build happen, Ctrl-C stops all."""

from __future__ import annotations

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
