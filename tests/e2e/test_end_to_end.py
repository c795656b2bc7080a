"""A change goes in through /change_hook/base, a real worker builds it, /json shows it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests
import sqlalchemy as sa

from bbweb.db.schema import builders, buildrequests, builds, logs, slaves, steps
from bbweb.engine.builds import request_stop
from bbweb.engine.force import force_build
from bbweb.engine.logs import read_text
from tests.e2e.conftest import start_live_master, stop_live_master, wait_for

CFG = r"""
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'E2E'
c['buildbotURL'] = 'http://127.0.0.1:PORT/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('w1', 'pw1'),
               BuildSlave('victim', 'pwv', keepalive_interval=1),
               BuildSlave('rescuer', 'pwr', keepalive_interval=1),
               BuildSlave('leaver', 'pwl'), BuildSlave('ghost', 'pwg')]
ok = BuildFactory()
ok.addStep(ShellCommand(name='say', command=Interpolate(
    'echo "branch=%(prop:branch)s rev=%(prop:revision)s by %(prop:slavename)s"')))
ok.addStep(ShellCommand(name='mix', command=['sh', '-c',
    'echo out1; echo err1 >&2; sleep 0.3; echo out2; printf "bad \\377\\376 bytes\\n"']))
ok.addStep(ShellCommand(name='stream', command=['sh', '-c', 'echo first; sleep 3; echo second']))
bad = BuildFactory()
bad.addStep(ShellCommand(name='compile', command=['sh', '-c', 'echo broken >&2; exit 3'],
                         haltOnFailure=True, descriptionDone=['compile']))
bad.addStep(ShellCommand(name='unreached', command=['true']))
lossy = BuildFactory([ShellCommand(name='work', command=Interpolate(
    'if [ "%(prop:slavename)s" = victim ]; then sleep 60; fi; echo done on '
    '%(prop:slavename)s'))])
long = BuildFactory([ShellCommand(name='long', command='echo started $SEARCH; sleep 300',
                                  env={'SEARCH': ['/opt/a', '/opt/b']}),
                     ShellCommand(name='after', command=['true'])])
c['builders'] = [
    BuilderConfig(name='e2e', slavenames=['w1'], factory=ok),
    BuilderConfig(name='stoppable', slavenames=['w1'], factory=long),
    BuilderConfig(name='leaving', slavenames=['leaver'], factory=long),
    BuilderConfig(name='haunted', slavenames=['ghost'], factory=ok),
    BuilderConfig(name='e2e-fail', slavenames=['w1'], factory=bad),
    BuilderConfig(name='lossy', slavenames=['victim', 'rescuer'], factory=lossy),
]
c['schedulers'] = [
    SingleBranchScheduler(name='main', branch='main', builderNames=['e2e', 'e2e-fail']),
    ForceScheduler(name='force', builderNames=['lossy', 'stoppable', 'leaving',
                                                 'haunted']),
]
c['status'] = [WebStatus(http_port=PORT, change_hook_dialects={'base': True})]
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory, e2e_db_url):  # type: ignore[no-untyped-def]
    master = start_live_master(tmp_path_factory.mktemp("e2e") / "master", CFG, e2e_db_url)
    master.start_worker("w1", "pw1")
    try:
        yield master
    finally:
        stop_live_master(master)


def build_id(live, builder: str, number: int) -> int | None:
    with live.db.read() as conn:
        return conn.execute(sa.select(builds.c.id)
                            .join(builders, builders.c.id == builds.c.builderid)
                            .where(builders.c.name == builder, builds.c.number == number)
                            ).scalar()


def step_log(live, buildid: int, stepname: str) -> tuple[str, object]:
    with live.db.read() as conn:
        row = conn.execute(sa.select(steps).where(steps.c.buildid == buildid,
                                                  steps.c.name == stepname)).one()
        logid = conn.execute(sa.select(logs.c.id).where(logs.c.stepid == row.id,
                                                        logs.c.name == "stdio")).scalar()
        return (read_text(conn, logid) if logid else ""), row


def test_change_to_finished_build(live):
    out = subprocess.run([sys.executable, "-m", "bbweb.cli", "sendchange", "--master", live.url,
                          "--who", "alice <alice@example.org>", "-m", "make it faster",
                          "--branch", "main", "--revision", "r42", "--repository", "git://x",
                          "src/a.c", "src/b.c"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "change sent successfully" in out.stdout

    # output streams while the step runs: 'first' is visible before 'second' exists
    def streaming():
        bid = build_id(live, "e2e", 0)
        if bid is None:
            return None
        text, row = step_log(live, bid, "stream")
        return (bid, text, row) if "first" in text else None

    bid, text, row = wait_for(streaming, 60, what="the stream step's first line")
    assert "\nsecond\n" not in text and row.finished_at is None

    build = wait_for(lambda: (live.get_json("/json/builders/e2e/builds/0") or {}).get(
        "results") is not None and live.get_json("/json/builders/e2e/builds/0"), 60,
        what="build e2e #0 to finish")
    assert build["results"] == 0
    assert build["text"] == ["build", "successful"]
    assert build["slave"] == "w1"
    assert build["blame"] == ["alice <alice@example.org>"]
    assert [s["name"] for s in build["steps"]] == ["say", "mix", "stream"]
    assert all(s["isFinished"] and s["results"][0] == 0 for s in build["steps"])
    props = {name: value for name, value, _src in build["properties"]}
    assert props["branch"] == "main" and props["revision"] == "r42"
    assert props["buildername"] == "e2e" and props["buildnumber"] == 0
    assert props["slavename"] == "w1" and props["repository"] == "git://x"
    ss = build["sourceStamps"][0]
    assert ss["revision"] == "r42" and ss["branch"] == "main"
    assert [f["name"] for f in ss["changes"][0]["files"]] == ["src/a.c", "src/b.c"]
    assert build["logs"][0][1].startswith(live.url + "/builders/e2e/builds/0/steps/say/logs/")

    say, _ = step_log(live, bid, "say")
    assert "branch=main rev=r42 by w1\n" in say
    mix, _ = step_log(live, bid, "mix")
    assert mix.index("out1") < mix.index("err1") < mix.index("out2")
    assert "bad \ufffd\ufffd bytes" in mix
    assert "exit code 0" in mix  # the worker's own header line

    failed = wait_for(lambda: (live.get_json("/json/builders/e2e-fail/builds/-1") or {}).get(
        "results") is not None and live.get_json("/json/builders/e2e-fail/builds/-1"), 60,
        what="build e2e-fail to finish")
    assert failed["results"] == 2
    assert failed["text"] == ["failed", "compile"]
    assert failed["steps"][1]["isStarted"] is False


def test_wrong_password_is_refused(live):
    proc = live.start_worker("w1", "not-the-password", label="worker-bad")
    assert proc.wait(timeout=30) == 2
    web_log = live.log_text("web")
    assert "worker authentication failed for 'w1'" in web_log


def test_killed_worker_build_is_exception_and_retried(live):
    cfg = live.config
    with live.db.write() as conn:
        force_build(conn, cfg, ["lossy"], reason="loss test", owner="tester",
                    scheduler="force")
    live.start_worker("victim", "pwv")

    def running_on_victim():
        with live.db.read() as conn:
            return conn.execute(
                sa.select(builds.c.id).join(slaves, slaves.c.id == builds.c.slaveid)
                .join(steps, steps.c.buildid == builds.c.id)
                .where(slaves.c.name == "victim", steps.c.started_at.isnot(None),
                       builds.c.finished_at.is_(None))).scalar()

    lost_id = wait_for(running_on_victim, 60, what="the victim to start its build")
    live.stop("worker-victim", sig=signal.SIGKILL)

    def lost():
        with live.db.read() as conn:
            return conn.execute(sa.select(builds).where(builds.c.id == lost_id,
                                                        builds.c.finished_at.isnot(None))
                                ).first()

    row = wait_for(lost, 60, what="the daemon to notice the lost worker")
    assert row.results == 4
    with live.db.read() as conn:
        br = conn.execute(sa.select(buildrequests).where(
            buildrequests.c.id == row.buildrequestid)).one()
        victim = conn.execute(sa.select(slaves).where(slaves.c.name == "victim")).one()
    assert not br.complete and br.claimed_at is None
    assert not victim.connected

    live.start_worker("rescuer", "pwr")
    retried = wait_for(lambda: (live.get_json("/json/builders/lossy/builds/1") or {}).get(
        "results") is not None and live.get_json("/json/builders/lossy/builds/1"), 60,
        what="the retried build to finish")
    assert retried["number"] == 1 and retried["results"] == 0
    assert retried["slave"] == "rescuer"
    first = live.get_json("/json/builders/lossy/builds/0")
    assert first["results"] == 4 and first["text"] == ["exception", "slave", "lost"]


def running_step(live, builder: str, stepname: str):
    def find():
        with live.db.read() as conn:
            return conn.execute(
                sa.select(builds.c.id, steps.c.id.label("stepid"))
                .join(builders, builders.c.id == builds.c.builderid)
                .join(steps, steps.c.buildid == builds.c.id)
                .where(builders.c.name == builder, steps.c.name == stepname,
                       steps.c.started_at.isnot(None), steps.c.finished_at.is_(None))
            ).first()
    return wait_for(find, 60, what=f"{builder}'s {stepname} step to run")


def test_stop_kills_the_running_command(live):
    with live.db.write() as conn:
        force_build(conn, live.config, ["stoppable"], reason="stop test", owner="tester",
                    scheduler="force")
    row = running_step(live, "stoppable", "long")
    with live.db.write() as conn:
        request_stop(conn, row.id, "stopped by tester")
    build = wait_for(lambda: (live.get_json("/json/builders/stoppable/builds/0") or {}).get(
        "results") is not None and live.get_json("/json/builders/stoppable/builds/0"), 60,
        what="the stopped build to finish")
    assert build["results"] == 4
    assert build["text"] == ["exception", "interrupted"]
    long, after = build["steps"]
    assert long["results"][0] == 4 and "interrupted" in long["text"]
    assert after["isStarted"] is False
    text, _ = step_log(live, row.id, "long")
    # the list-valued env reached the command joined as a search path
    assert "started /opt/a:/opt/b\n" in text and "the build was stopped" in text


def test_worker_shutdown_requeues_its_build_at_once(live):
    worker = live.start_worker("leaver", "pwl")
    with live.db.write() as conn:
        force_build(conn, live.config, ["leaving"], reason="leave test", owner="tester",
                    scheduler="force")
    row = running_step(live, "leaving", "long")
    slave = live.get_json("/json/slaves/leaver")
    assert slave["connected"] is True and slave["version"]
    assert slave["host"] and slave["runningBuilds"][0]["number"] == 0
    os.killpg(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    # the goodbye, not the 30 s heartbeat timeout, ended the build: it is already over
    with live.db.read() as conn:
        build = conn.execute(sa.select(builds).where(builds.c.id == row.id)).one()
        br = conn.execute(sa.select(buildrequests).where(
            buildrequests.c.id == build.buildrequestid)).one()
    assert build.results == 4 and build.finished_at is not None
    assert not br.complete and br.claimed_at is None
    assert live.get_json("/json/slaves/leaver")["connected"] is False
    assert "worker leaver stopped" in live.log_text("worker-leaver")


def test_abandoned_long_poll_claims_nothing(live):
    """A worker that hangs up on its long-poll must not be handed a build afterwards."""
    with pytest.raises(requests.ReadTimeout):
        requests.post(live.url + "/api/worker/claim", json={"wait": 20},
                      auth=("ghost", "pwg"), timeout=1)
    with live.db.write() as conn:
        force_build(conn, live.config, ["haunted"], reason="nobody home", owner="tester",
                    scheduler="force")
    access_log = live.basedir / "http.log"

    def claim_line():
        lines = access_log.read_text().splitlines() if access_log.exists() else []
        return next((ln for ln in lines if " ghost " in ln and "/api/worker/claim" in ln),
                    None)

    line = wait_for(claim_line, 30, what="the ghost's long-poll to end")
    assert '" 204 ' in line
    with live.db.read() as conn:
        pending = conn.execute(
            sa.select(buildrequests).join(builders,
                                          builders.c.id == buildrequests.c.builderid)
            .where(builders.c.name == "haunted")).one()
    assert pending.claimed_at is None and not pending.complete
