"""Work wakes the processes that wait for it: with every fallback re-check set to an hour
(``BBWEB_WAKEUP_FALLBACK``), a build forced from another process is claimed by the
worker's waiting long-poll and its events reach the daemon's consumer — which only
happens if the wake-ups cross from the forcing process to gunicorn's worker process and
to the daemon. Real gunicorn, daemon and worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
import requests
import sqlalchemy as sa

from bbweb.db import wakeup
from bbweb.db.schema import builders, builds, slaves
from bbweb.engine.force import force_build
from tests.e2e.conftest import start_live_master, stop_live_master, wait_for

CFG = r"""
import json, os
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
# a long heartbeat: the worker's idle claims wait 20 s, so a claim started after the force
# cannot be what picks the build up in time
c['slaves'] = [BuildSlave('w1', 'pw1', keepalive_interval=60)]
c['builders'] = [BuilderConfig(name='quick', slavenames=['w1'],
                               factory=BuildFactory([ShellCommand(command=['true'])]))]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['quick'])]


class FinishedBuilds:
    # an event consumer of the daemon: writes the build.finished events it was handed
    consumer_name = 'test.finished'

    def handle_event(self, event):
        if event['kind'] == 'build.finished':
            with open('finished.jsonl', 'a') as fh:
                fh.write(json.dumps(event['payload']) + '\n')


c['status'] = [WebStatus(http_port=PORT), FinishedBuilds()]
"""

# a lost wake-up would leave the build to the next claim (20 s) or the next fallback
# look (an hour): this is far shorter, and far longer than a build of `true` takes
DEADLINE = 12


@pytest.fixture
def live(tmp_path, e2e_db_url, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv(wakeup.FALLBACK_VAR, "3600")
    master = start_live_master(tmp_path / "master", CFG, e2e_db_url)
    try:
        yield master
    finally:
        stop_live_master(master)


def finished_build(live, number: int):  # type: ignore[no-untyped-def]
    with live.db.read() as conn:
        return conn.execute(sa.select(builds.c.id, builds.c.results)
                            .join(builders, builders.c.id == builds.c.builderid)
                            .where(builders.c.name == "quick", builds.c.number == number,
                                   builds.c.finished_at.isnot(None))).first()


def test_forced_builds_are_claimed_and_dispatched_on_wake_ups(live):
    live.start_worker("w1", "pw1")
    wait_for(lambda: "connected to" in live.log_text("worker-w1"), 60,
             what="the worker to say hello")
    finished_file = live.basedir / "finished.jsonl"
    for number in range(3):  # each force finds the worker back in a waiting claim
        with live.db.write() as conn:
            force_build(conn, live.config, ["quick"], reason="wake", owner="test",
                        scheduler="force")
        build = wait_for(lambda n=number: finished_build(live, n), DEADLINE,
                         what=f"forced build #{number} to be claimed and finish")
        assert build.results == 0

        def dispatched(build_id: int = build.id) -> bool:
            if not finished_file.exists():
                return False
            return any(json.loads(line).get("buildid") == build_id
                       for line in finished_file.read_text().splitlines())

        wait_for(dispatched, DEADLINE, what=f"the daemon's consumer to get build #{number}")


IDLE_CFG = r"""
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
# heartbeats every 0.5 s, lost after 2.5 s of silence: idle claims of 1.25 s
c['slaves'] = [BuildSlave('w1', 'pw1', keepalive_interval=0.5)]
c['builders'] = [BuilderConfig(name='quick', slavenames=['w1'],
                               factory=BuildFactory([ShellCommand(command=['true'])]))]
c['status'] = [WebStatus(http_port=PORT)]
"""


def test_an_idle_worker_is_kept_alive_by_its_claims(tmp_path, e2e_db_url):
    """An idle worker sends no heartbeat beside its waiting claims (each one is a
    heartbeat at the master): it stays connected through many heartbeat timeouts while
    its heartbeats stop after the first."""
    master = start_live_master(tmp_path / "master", IDLE_CFG, e2e_db_url)
    try:
        master.start_worker("w1", "pw1")
        log = master.basedir / "http.log"

        def requests_of(path: str) -> int:
            lines = log.read_text().splitlines() if log.exists() else []
            return sum(1 for line in lines if f"/api/worker/{path} " in line)

        # eight claims of 1.25 s: four heartbeat timeouts of 2.5 s
        wait_for(lambda: requests_of("claim") >= 8, 60, what="the worker's idle claims")
        assert requests_of("heartbeat") <= 1  # (twenty without claims counting as one)
        with master.db.read() as conn:
            assert conn.execute(sa.select(slaves.c.connected)
                                .where(slaves.c.name == "w1")).scalar()
    finally:
        stop_live_master(master)


def test_a_live_stream_hears_an_event_committed_by_another_process(live):
    """/json/events in gunicorn's process sleeps on the wake-ups too: with its fallback
    look an hour away, a build forced from this process reaches an open stream at once."""
    with requests.get(live.url + "/json/events", stream=True, timeout=DEADLINE,
                      headers={"Accept": "text/event-stream"}) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines(decode_unicode=True)
        next(lines, None)  # the stream is open (its first line: a comment or a retry)
        with live.db.write() as conn:
            force_build(conn, live.config, ["quick"], reason="stream", owner="test",
                        scheduler="force")
        kinds = []
        for line in lines:
            if line.startswith("event: "):
                kinds.append(line[len("event: "):])
                if "buildset.new" in kinds:
                    break
        assert "buildset.new" in kinds
