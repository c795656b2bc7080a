"""Worker liveness: the daemon abandons the builds of workers that stopped heartbeating."""

from __future__ import annotations

import json
import time

import sqlalchemy as sa

from bbweb.daemon.liveness import FORGET_TOGETHER
from bbweb.db.schema import buildrequests, builds, events, slaves, steps, worker_requests
from bbweb.engine import slaves as eslaves
from bbweb.engine.builders import sync_builders
from bbweb.engine.builds import claim_build_request, next_step
from bbweb.engine.changes import ChangeInput, add_change
from bbweb.engine.worker_protocol import REPLAY_KEEP
from bbweb.status.builder import EXCEPTION
from tests.daemon.conftest import wait_for


def _slave(m, name):  # type: ignore[no-untyped-def]
    with m.db.read() as conn:
        return conn.execute(sa.select(slaves).where(slaves.c.name == name)).one()


def _set_last_seen(m, name, ago):  # type: ignore[no-untyped-def]
    with m.db.write() as conn:
        conn.execute(slaves.update().where(slaves.c.name == name)
                     .values(last_seen=time.time() - ago))


def test_silent_worker_builds_become_exception_and_requests_return(master, daemons):
    cfg = master.config
    with master.db.write() as conn:
        sync_builders(conn, cfg)
        add_change(conn, cfg, ChangeInput(author="alice", files=["a.c"], revision="abc"))
    with master.db.write() as conn:
        sid1 = eslaves.slave_connected(conn, "slave1", {"host": "h1"})
        eslaves.slave_connected(conn, "slave2", {"host": "h2"})
        lost_builds = [claim_build_request(conn, cfg, "slave1", sid1) for _ in range(2)]
    assert all(lost_builds)
    with master.db.write() as conn:
        running_step = next_step(conn, cfg, lost_builds[0].buildid)
    assert running_step is not None
    with master.db.read() as conn:
        first_event = conn.execute(sa.select(sa.func.max(events.c.id))).scalar()
    timeout = eslaves.heartbeat_timeout(cfg, "slave1")
    _set_last_seen(master, "slave1", timeout + 60)  # slave1 went silent
    _set_last_seen(master, "slave2", 1)  # slave2 is fine

    d = daemons(master.basedir, holder="d")
    wait_for(lambda: not _slave(master, "slave1").connected, what="slave1 to be disconnected")
    assert d.stop() == 0

    assert _slave(master, "slave2").connected
    with master.db.read() as conn:
        rows = conn.execute(sa.select(builds).where(
            builds.c.id.in_([b.buildid for b in lost_builds]))).all()
        step = conn.execute(sa.select(steps).where(steps.c.id == running_step["id"])).one()
        requests = conn.execute(sa.select(buildrequests).where(
            buildrequests.c.id.in_([r.buildrequestid for r in rows]))).all()
        new_events = conn.execute(sa.select(events).where(events.c.id > first_event)
                                  .order_by(events.c.id)).all()
    assert len(rows) == 2
    for row in rows:
        assert row.results == EXCEPTION and row.finished_at is not None
        text = json.loads(row.text)
        assert "slave" in text and "lost" in text
    assert step.results == EXCEPTION and step.finished_at is not None
    assert all(not r.complete and r.claimed_at is None and r.claimed_by is None
               for r in requests)
    kinds = [(e.kind, json.loads(e.payload)) for e in new_events]
    assert ("slave.disconnected", {"slave": "slave1"}) in kinds
    finished = [p for k, p in kinds if k == "build.finished"]
    assert sorted(p["buildid"] for p in finished) == sorted(b.buildid for b in lost_builds)
    assert all(p["results"] == EXCEPTION for p in finished)

    # another worker can claim the returned request
    with master.db.write() as conn:
        sid2 = eslaves.heartbeat(conn, "slave2")
        retry = claim_build_request(conn, cfg, "slave2", sid2)
    assert retry is not None and retry.builder == "runtests"
    lost_runtests = next(b for b in lost_builds if b.builder == "runtests")
    lost_brid = next(r.buildrequestid for r in rows if r.id == lost_runtests.buildid)
    with master.db.read() as conn:
        retried = conn.execute(sa.select(builds).where(builds.c.id == retry.buildid)).one()
    assert retried.buildrequestid == lost_brid
    assert retry.number == 1


def test_heartbeat_timeout_override(master, daemons):
    with master.db.write() as conn:
        eslaves.slave_connected(conn, "slave1", {})
        eslaves.slave_connected(conn, "slave2", {})
    _set_last_seen(master, "slave1", 12)  # within the default timeout, beyond 5s
    _set_last_seen(master, "slave2", 1)
    d = daemons(master.basedir, holder="d", heartbeat_timeout=5)
    wait_for(lambda: not _slave(master, "slave1").connected, what="slave1 to be disconnected")
    assert d.stop() == 0
    assert _slave(master, "slave2").connected


def test_kept_answers_are_forgotten_together_once_the_oldest_is_due(master, daemons):
    """Answers kept for repeated worker requests are forgotten by the liveness pass: a
    burst of them (made seconds apart) in one pass once the oldest has been kept
    REPLAY_KEEP + FORGET_TOGETHER, while younger ones stay until then."""
    with master.db.write() as conn:
        sid = eslaves.slave_connected(conn, "slave1", {})
    now = time.time()
    ages = {"old-1": REPLAY_KEEP + FORGET_TOGETHER + 5, "old-2": REPLAY_KEEP + 10,
            "young": REPLAY_KEEP - 60}
    with master.db.write() as conn:
        for key, age in ages.items():
            conn.execute(worker_requests.insert().values(
                slaveid=sid, request_key=key, path="/claim", created_at=now - age,
                status=204, body=""))

    def kept() -> list[str]:
        with master.db.read() as conn:
            return sorted(conn.execute(sa.select(worker_requests.c.request_key)).scalars())

    d = daemons(master.basedir, holder="d")
    wait_for(lambda: kept() == ["young"], what="the old answers to be forgotten")
    assert d.stop() == 0
