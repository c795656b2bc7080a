"""Lost answers between a real worker and a real master: a fault-injecting proxy forwards
each request, lets the master act on it, then resets the worker's connection instead of
relaying the answer — for each call of the worker protocol in turn. The worker repeats the
call; every build must still run once, with its log exactly as the step printed it and no
step marked lost."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bbweb.db.schema import (
    builders,
    buildrequests,
    builds,
    buildset_properties,
    events,
    logs,
    slaves,
    steps,
)
from bbweb.engine.actions_slaves import ping_slaves
from bbweb.engine.force import force_build
from bbweb.engine.logs import read_text
from bbweb.status.builder import EXCEPTION, SUCCESS
from tests.e2e.conftest import LiveMaster, start_live_master, stop_live_master, wait_for
from tests.support.faultproxy import FaultProxy

CFG = r"""
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'faults'
c['buildbotURL'] = 'http://127.0.0.1:PORT/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('fw', 'pwf', keepalive_interval=0.5)]
talk = BuildFactory([
    ShellCommand(name='talk', command=['sh', '-c',
        'for i in 1 2 3 4; do echo "line $i"; sleep 0.6; done; echo "to stderr" >&2']),
    ShellCommand(name='after', command=['echo', 'after']),
])
c['builders'] = [BuilderConfig(name='faulty', slavenames=['fw'], factory=talk)]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['faulty'])]
c['status'] = [WebStatus(http_port=PORT)]
"""

PRINTED = "line 1\nline 2\nline 3\nline 4\nto stderr\n"

# (what is lost, request line, answer that must match, matching requests let through first)
# The confirmation answers the build's first step, and each step's finish carries the
# step's last output and answers the next step (null after the last one).
FAULTS = [
    ("claim", r"POST /api/worker/claim ", rb'"lease"', 0),
    ("confirm with the first step", r"POST /api/worker/leases/\d+/confirm ",
     rb'"step":\{', 0),
    ("log", r"POST /api/worker/steps/\d+/log[ ?]", None, 1),
    ("finish with the next step", r"POST /api/worker/steps/\d+/finish ", rb'"after"', 0),
    ("last finish", r"POST /api/worker/steps/\d+/finish ", rb'"step":null', 0),
    ("heartbeat", r"POST /api/worker/heartbeat ", None, 0),
]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory, e2e_db_url) -> Iterator[tuple[LiveMaster, FaultProxy]]:
    live = start_live_master(tmp_path_factory.mktemp("faults") / "master", CFG, e2e_db_url,
                             daemon=False)
    proxy = FaultProxy(int(live.url.rsplit(":", 1)[1]))
    try:
        yield live, proxy
    finally:
        proxy.close()
        stop_live_master(live)


def start_worker(live: LiveMaster, proxy: FaultProxy) -> None:
    live.spawn("worker-fw", [sys.executable, "-m", "bbweb.cli", "worker", "--master",
                             proxy.url, "--name", "fw", "--password", "pwf",
                             "--basedir", str(live.basedir / "workers" / "fw")])


def connected(live: LiveMaster) -> bool:
    with live.db.read() as conn:
        return bool(conn.execute(sa.select(slaves.c.connected)
                                 .where(slaves.c.name == "fw")).scalar())


def run_forced_build(live: LiveMaster) -> int:
    """Force a build and wait for its request to complete; returns the request id."""
    with live.db.write() as conn:
        _bsid, brids = force_build(conn, live.config, ["faulty"], reason="fault",
                                   owner="tester", scheduler="force")
    brid = brids["faulty"]

    def complete():
        with live.db.read() as conn:
            return conn.execute(sa.select(buildrequests.c.complete)
                                .where(buildrequests.c.id == brid)).scalar()

    wait_for(complete, 60, what=f"build request {brid} to complete")
    return brid


def assert_built_once_cleanly(live: LiveMaster, brid: int) -> None:
    with live.db.read() as conn:
        rows = conn.execute(sa.select(builds).where(builds.c.buildrequestid == brid)).all()
        assert len(rows) == 1, "the request was built more than once"
        build = rows[0]
        step_rows = conn.execute(sa.select(steps).where(steps.c.buildid == build.id)
                                 .order_by(steps.c.number)).all()
        talk_log = conn.execute(sa.select(logs.c.id).where(
            logs.c.stepid == step_rows[0].id, logs.c.name == "stdio")).scalar()
        printed = read_text(conn, talk_log, streams="oe")
    assert build.results == SUCCESS, json.loads(build.text)
    assert [r.results for r in step_rows] == [SUCCESS, SUCCESS]
    assert not any("lost" in json.loads(r.text) for r in step_rows)
    assert printed == PRINTED


def test_hello_answer_lost(faulty):
    live, proxy = faulty
    rule = proxy.drop_answer(r"POST /api/worker/hello ")
    start_worker(live, proxy)
    wait_for(lambda: connected(live) and rule.dropped, 60, what="the worker's hello")
    assert_built_once_cleanly(live, run_forced_build(live))
    assert len(rule.dropped) == 1
    assert sum(1 for line in proxy.requests if "/hello " in line) == 2  # sent, repeated


@pytest.mark.parametrize("what,request_line,answer,skip", FAULTS,
                         ids=[f[0].replace(" ", "-") for f in FAULTS])
def test_answer_lost(faulty, what, request_line, answer, skip):
    live, proxy = faulty
    if "worker-fw" not in live.procs:
        start_worker(live, proxy)
    wait_for(lambda: connected(live), 60, what="the worker to connect")
    rule = proxy.drop_answer(request_line, answer, skip=skip)
    brid = run_forced_build(live)
    assert len(rule.dropped) == 1, f"no {what} answer was lost: {proxy.requests[-20:]}"
    assert_built_once_cleanly(live, brid)
    proxy.clear()


def test_a_build_asks_for_no_step_and_sends_its_last_output_with_the_finish(faulty):
    """Against this master the worker never asks for a step: the confirmation hands over
    the first, each finish the next, and the output a step prints last (its stderr line
    and the exit status) comes with the step's finish, not in a log request of its own."""
    live, proxy = faulty
    if "worker-fw" not in live.procs:
        start_worker(live, proxy)
    wait_for(lambda: connected(live), 60, what="the worker to connect")
    seen = len(proxy.requests)
    brid = run_forced_build(live)
    assert_built_once_cleanly(live, brid)
    calls = [line.split()[1] for line in proxy.requests[seen:] if "/heartbeat " not in line]
    assert not any("/next_step" in c for c in calls), calls
    assert sum(1 for c in calls if c.endswith("/confirm")) == 1
    assert sum(1 for c in calls if c.endswith("/finish")) == 2
    # the second step (echo after) prints nothing that is not in its finish
    with live.db.read() as conn:
        build = conn.execute(sa.select(builds).where(builds.c.buildrequestid == brid)).one()
        after = conn.execute(sa.select(steps.c.id).where(steps.c.buildid == build.id,
                                                         steps.c.number == 1)).scalar()
        after_log = conn.execute(sa.select(logs.c.id).where(
            logs.c.stepid == after, logs.c.name == "stdio")).scalar()
        text = read_text(conn, after_log, streams="oh")
    assert not any(c == f"/api/worker/steps/{after}/log?log=stdio" for c in calls), calls
    assert text.startswith("echo after\n") and "after\n" in text.splitlines(True)
    assert "program finished with exit code 0\n" in text


def test_pong_answer_lost(faulty):
    live, proxy = faulty
    if "worker-fw" not in live.procs:
        start_worker(live, proxy)
    wait_for(lambda: connected(live), 60, what="the worker to connect")
    rule = proxy.drop_answer(r"POST /api/worker/pong ")
    with live.db.write() as conn:
        ping_slaves(conn, ["fw"], "tester")

    def answered():
        with live.db.read() as conn:
            return conn.execute(sa.select(slaves.c.ping_answered_at)
                                .where(slaves.c.name == "fw")).scalar()

    wait_for(answered, 60, what="the ping to be answered")
    wait_for(lambda: sum(1 for ln in proxy.requests if "/pong " in ln) >= 2, 30,
             what="the worker to repeat its pong")
    with live.db.read() as conn:
        pongs = conn.execute(sa.select(sa.func.count()).select_from(events)
                             .where(events.c.kind == "slave.pong")).scalar()
    assert len(rule.dropped) == 1 and pongs == 1


def test_goodbye_answer_lost(faulty):
    live, proxy = faulty
    if "worker-fw" not in live.procs:
        start_worker(live, proxy)
    wait_for(lambda: connected(live), 60, what="the worker to connect")
    rule = proxy.drop_answer(r"POST /api/worker/goodbye ")
    assert live.stop("worker-fw", sig=signal.SIGTERM) == 0
    assert len(rule.dropped) == 1
    assert not connected(live)
    assert "could not say goodbye" not in live.log_text("worker-fw")
    # nothing of the builder is left running
    with live.db.read() as conn:
        running = conn.execute(sa.select(builds.c.id)
                               .join(builders, builders.c.id == builds.c.builderid)
                               .where(builders.c.name == "faulty",
                                      builds.c.finished_at.is_(None))).all()
    assert running == []


def test_deeply_nested_property_strands_nothing(faulty):
    """A buildset property nested 980 levels deep, stored before such values were refused
    at entry, made the claim fail after its commit: the claim was stranded and the worker's
    slot lost. Now the build ends as EXCEPTION and the worker goes on building."""
    live, proxy = faulty
    proxy.clear()
    if "worker-fw" not in live.procs:
        start_worker(live, proxy)
    wait_for(lambda: connected(live), 60, what="the worker to connect")
    with live.db.write() as conn:
        _bsid, brids = force_build(conn, live.config, ["faulty"], reason="deep",
                                   owner="tester", scheduler="force",
                                   properties={"deep": "placeholder"})
        conn.execute(buildset_properties.update()
                     .where(buildset_properties.c.buildsetid == _bsid,
                            buildset_properties.c.name == "deep")
                     .values(value="[" * 980 + "1" + "]" * 980))

    def done():
        with live.db.read() as conn:
            return conn.execute(sa.select(builds).where(
                builds.c.buildrequestid == brids["faulty"],
                builds.c.finished_at.isnot(None))).first()

    build = wait_for(done, 60, what="the build with the deep property to end")
    assert build.results == EXCEPTION
    assert json.loads(build.text) == ["exception", "bad", "properties"]
    assert_built_once_cleanly(live, run_forced_build(live))
