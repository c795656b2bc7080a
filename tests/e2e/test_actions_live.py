"""Control actions end to end on real processes (gunicorn, the daemon, workers), driven
through the web forms as a browser would: a force really runs, a stop really kills the
sleeping step, a ping is answered by the worker, a graceful shutdown lets the build
finish and the worker exit."""

from __future__ import annotations

import os

import pytest
import requests
import sqlalchemy as sa

from bbweb.db.schema import builders, builds
from tests.e2e.conftest import Browser, start_live_master, stop_live_master, wait_for

CFG = r"""
from bbweb.config import *
from bbweb.auth import Authz
c = BuildmasterConfig = {}
c['buildbotURL'] = 'http://127.0.0.1:PORT/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('w1', 'pw1', keepalive_interval=1),
               BuildSlave('w2', 'pw2', keepalive_interval=1)]
sleepy = BuildFactory([ShellCommand(name='sleep', command=Interpolate(
    'echo $$ > %(prop:pidfile)s; exec sleep 300'))])
quick = BuildFactory([ShellCommand(name='say', command=Interpolate(
    'echo "forced by %(prop:owner)s jobs=%(prop:jobs)s"'))])
slowish = BuildFactory([ShellCommand(name='work', command='sleep 3; echo done')])
c['builders'] = [
    BuilderConfig(name='quick', slavenames=['w1'], factory=quick),
    BuilderConfig(name='sleepy', slavenames=['w1'], factory=sleepy),
    BuilderConfig(name='slowish', slavenames=['w2'], factory=slowish),
]
from bbweb.schedulers.forcesched import *
c['schedulers'] = [ForceScheduler(name='force', builderNames=['quick', 'sleepy', 'slowish'],
                                  properties=[StringParameter('pidfile', default=''),
                                              IntParameter('jobs', default=1)])]
c['status'] = [WebStatus(http_port=PORT, authz=Authz(default_action=True))]
"""

@pytest.fixture(scope="module")
def live(tmp_path_factory, e2e_db_url):  # type: ignore[no-untyped-def]
    master = start_live_master(tmp_path_factory.mktemp("actions") / "master", CFG,
                               e2e_db_url)
    master.start_worker("w1", "pw1")
    try:
        yield master
    finally:
        stop_live_master(master)


def build_row(live, builder: str, number: int):  # type: ignore[no-untyped-def]
    with live.db.read() as conn:
        return conn.execute(sa.select(builds).join(builders, builders.c.id == builds.c.builderid)
                            .where(builders.c.name == builder, builds.c.number == number)
                            ).first()


def test_force_really_runs(live):
    web = Browser(live.url)
    web.post("/builders/quick", "/builders/quick/force",
             {"forcescheduler": "force", "username": "Ann <ann@example.org>",
              "reason": "see it run", "jobs": "7"})
    assert "Forced a build of quick" in web.get("/builders/quick")
    wait_for(lambda: (b := build_row(live, "quick", 0)) is not None and b.results == 0, 30,
             what="the forced build to succeed")
    log = requests.get(live.url + "/builders/quick/builds/0/steps/say/logs/stdio/text",
                       timeout=10).text
    assert "forced by Ann <ann@example.org> jobs=7" in log
    web.post("/builders/quick", "/builders/quick/force",
             {"forcescheduler": "force", "jobs": "seven"})
    assert "must be a whole number" in web.get("/builders/quick")


def test_stop_kills_the_sleeping_step(live, tmp_path):
    web = Browser(live.url)
    pidfile = tmp_path / "sleep.pid"
    web.post("/builders/sleepy", "/builders/sleepy/force",
             {"forcescheduler": "force", "pidfile": str(pidfile)})
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30,
             what="the sleeping step to start")
    pid = int(pidfile.read_text())
    os.kill(pid, 0)  # it is running
    web.post("/builders/sleepy/builds/0", "/builders/sleepy/builds/0/stop",
             {"comments": "no time to wait"})

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, 20, what="the sleep process to be killed")
    wait_for(lambda: build_row(live, "sleepy", 0).finished_at is not None, 20,
             what="the stopped build to finish")
    row = build_row(live, "sleepy", 0)
    assert row.results == 4  # EXCEPTION
    page = web.get("/builders/sleepy/builds/0")
    assert "Stopped: The web-page &#39;stop build&#39; button was pressed by " in page
    assert "no time to wait" in page


def test_ping_is_answered_by_the_worker(live):
    web = Browser(live.url)
    wait_for(lambda: "connected" in web.get("/builders/quick"), 20,
             what="w1 to be connected")
    web.post("/builders/quick", "/builders/quick/ping", {})
    wait_for(lambda: "answered after" in web.get("/builders/quick"), 20,
             what="the ping to be answered")


def test_graceful_shutdown_lets_the_build_finish_and_the_worker_exit(live):
    worker = live.start_worker("w2", "pw2")
    web = Browser(live.url)
    wait_for(lambda: "Graceful Shutdown" in web.get("/buildslaves/w2"), 20,
             what="w2 to connect")
    web.post("/builders/slowish", "/builders/slowish/force", {"forcescheduler": "force"})
    wait_for(lambda: build_row(live, "slowish", 0) is not None, 20,
             what="the build to start on w2")
    web.post("/buildslaves/w2", "/buildslaves/w2/shutdown", {})
    assert "will shut down gracefully" in web.get("/buildslaves/w2")
    assert worker.wait(timeout=30) == 0
    row = build_row(live, "slowish", 0)
    assert row.results == 0 and row.finished_at is not None  # it finished, not killed
    web.post("/builders/slowish", "/builders/slowish/force", {"forcescheduler": "force"})
    assert build_row(live, "slowish", 1) is None  # nobody takes new work
