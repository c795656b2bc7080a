"""A worker killed with SIGKILL and started again at once under the same name (what
systemd's Restart=always does), at random moments of its life: what it was building ends
as EXCEPTION within seconds — not after the heartbeat timeout — and runs again; nothing is
left running and the worker never loses its only build slot."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bbweb.db.schema import builders, buildrequests, builds, slaves
from bbweb.engine.builds import request_stop
from bbweb.engine.force import force_build
from bbweb.status.builder import EXCEPTION, SUCCESS
from tests.e2e.conftest import LiveMaster, start_live_master, stop_live_master, wait_for

CFG = r"""
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'restarts'
c['buildbotURL'] = 'http://127.0.0.1:PORT/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('phoenix', 'pwp', max_builds=1)]
# runs until stopped; ends by itself once the worker that started it is gone (the shell's
# parent is the worker process), so killed workers leave no stray commands behind
endless = BuildFactory([ShellCommand(name='endless', command=
    'echo started; while kill -0 $PPID 2>/dev/null; do sleep 0.1; done')])
quick = BuildFactory([ShellCommand(name='quick', command=['echo', 'quick'])])
c['builders'] = [BuilderConfig(name='endless', slavenames=['phoenix'], factory=endless),
                 BuilderConfig(name='quick', slavenames=['phoenix'], factory=quick)]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['endless', 'quick'])]
c['status'] = [WebStatus(http_port=PORT)]
"""

ROUNDS = 20


@pytest.fixture(scope="module")
def live(tmp_path_factory, e2e_db_url) -> Iterator[LiveMaster]:
    # with the daemon: its heartbeat timeout (30 s) must not be what ends the builds
    master = start_live_master(tmp_path_factory.mktemp("restarts") / "master", CFG,
                               e2e_db_url)
    try:
        yield master
    finally:
        stop_live_master(master)


def builds_of(live: LiveMaster, builder: str) -> list:
    with live.db.read() as conn:
        return conn.execute(sa.select(builds).join(builders, builders.c.id == builds.c.builderid)
                            .where(builders.c.name == builder).order_by(builds.c.id)).all()


def force(live: LiveMaster, builder: str) -> int:
    with live.db.write() as conn:
        _bsid, brids = force_build(conn, live.config, [builder], reason="restart test",
                                   owner="tester", scheduler="force")
    return brids[builder]


def kill_worker_group(live: LiveMaster) -> None:
    proc = live.procs.pop("worker-phoenix")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_killed_and_restarted_worker_loses_nothing(live):
    rng = random.Random(int(time.time()))
    brid = force(live, "endless")
    live.start_worker("phoenix", "pwp")
    for round_ in range(ROUNDS):
        # a random moment: starting up, saying hello, claiming, confirming, or building
        time.sleep(rng.uniform(0.0, 1.5))  # the fault's timing, not a wait for a condition
        running = [b.id for b in builds_of(live, "endless") if b.finished_at is None]
        kill_worker_group(live)
        started = time.monotonic()
        live.start_worker("phoenix", "pwp")

        def ended(killed: list[int] = running) -> bool:
            rows = {b.id: b for b in builds_of(live, "endless")}
            return all(rows[i].finished_at is not None for i in killed)

        wait_for(ended, 15, what=f"round {round_}: builds {running} of the killed worker "
                 "to end")
        took = time.monotonic() - started
        for build_id in running:
            row = next(b for b in builds_of(live, "endless") if b.id == build_id)
            assert row.results == EXCEPTION, (round_, build_id)
            assert json.loads(row.text) == ["exception", "slave", "lost"]
        assert took < 15  # the daemon's heartbeat timeout (30 s) had no part in it

    # the request runs again on the worker now alive, and nothing else is left running
    def rerun():
        rows = [b for b in builds_of(live, "endless") if b.finished_at is None]
        with live.db.read() as conn:
            session = conn.execute(sa.select(slaves.c.session)
                                   .where(slaves.c.name == "phoenix")).scalar()
        return rows if len(rows) == 1 and rows[0].worker_session == session else None

    (current,) = wait_for(rerun, 30, what="the request to run again on the restarted worker")
    assert current.buildrequestid == brid
    everything = builds_of(live, "endless")
    assert all(b.results == EXCEPTION for b in everything if b.id != current.id)

    # Stop reaches the build the restarted worker runs
    with live.db.write() as conn:
        request_stop(conn, current.id, "enough")

    def stopped():
        with live.db.read() as conn:
            return conn.execute(sa.select(buildrequests.c.complete)
                                .where(buildrequests.c.id == brid)).scalar()

    wait_for(stopped, 30, what="the stopped build's request to complete")
    # no slot was lost: the worker (max_builds=1) takes the next build at once
    quick = force(live, "quick")

    def quick_done():
        rows = builds_of(live, "quick")
        return rows and rows[-1].buildrequestid == quick and rows[-1].finished_at is not None

    wait_for(quick_done, 30, what="a build on the restarted worker")
    assert builds_of(live, "quick")[-1].results == SUCCESS
    assert all(b.finished_at is not None for b in builds_of(live, "endless"))
