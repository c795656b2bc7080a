"""Clean shutdown under `bbweb start`: the root page's button lets the running build
finish, starts nothing new, then the daemon, web server and local worker all stop and
`bbweb start` exits 0."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
import sqlalchemy as sa

from bbweb.db.connection import Database
from bbweb.db.schema import builds
from bbweb.mastercfg.master import load_master_config
from tests.e2e.conftest import Browser, free_port, wait_for
from tests.e2e.test_start import processes_mentioning

CFG = """
from bbweb.config import *
from bbweb.auth import Authz
c = BuildmasterConfig = {}
c['db_url'] = 'sqlite:///state.sqlite'
c['slaves'] = [BuildSlave('local-worker', 'pw', keepalive_interval=1)]
c['builders'] = [BuilderConfig(name='slowish', slavenames=['local-worker'],
    factory=BuildFactory([ShellCommand(name='work', command='sleep 3; echo done')]))]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['slowish'])]
c['status'] = [WebStatus(http_port=PORT, authz=Authz(forceBuild=True, cleanShutdown=True))]
"""


@pytest.mark.parametrize("web_workers", ["1", "2"], ids=["daemon-in-web", "daemon-process"])
def test_clean_shutdown_finishes_the_build_then_everything_stops(tmp_path, web_workers):
    """Whether the daemon runs in the web process (one web process) or in its own."""
    basedir = tmp_path / "master"
    basedir.mkdir()
    port = free_port()
    (basedir / "master.cfg").write_text(CFG.replace("PORT", str(port)))
    log = (tmp_path / "start.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bbweb.cli", "start", str(basedir),
                             "--web-workers", web_workers],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    db = None
    try:
        def healthy() -> bool:
            assert proc.poll() is None, (tmp_path / "start.log").read_text()
            try:
                return requests.get(url + "/health", timeout=2).ok
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy
                return False

        wait_for(healthy, 60, what="bbweb start to serve")
        db = Database(load_master_config(basedir).db_url)

        def build(number: int):  # type: ignore[no-untyped-def]
            with db.read() as conn:
                return conn.execute(sa.select(builds).where(builds.c.number == number)).first()

        web = Browser(url)
        web.post("/builders/slowish", "/builders/slowish/force", {"forcescheduler": "force"})
        wait_for(lambda: build(0) is not None, 30, what="the build to start")
        web.post("/", "/shutdown", {})
        assert "Master is shutting down" in web.get("/")
        web.post("/builders/slowish", "/builders/slowish/force", {"forcescheduler": "force"})
        assert proc.wait(timeout=60) == 0, (tmp_path / "start.log").read_text()
        first = build(0)
        assert first.results == 0 and first.finished_at is not None  # finished, not killed
        assert build(1) is None  # the second request never started
        assert "clean shutdown finished" in (tmp_path / "start.log").read_text()
        wait_for(lambda: processes_mentioning(str(basedir)) == [], 15,
                 what="every process of the master to exit")
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        if db is not None:
            db.dispose()
