"""Control actions at the engine and worker-protocol level: what each one records, and
what a worker is told afterwards."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from bbweb.db.schema import buildrequests, builds, buildset_properties, buildsets, sourcestamps
from bbweb.db.schema import buildset_sourcestamps as bss
from bbweb.engine import actions, actions_slaves
from bbweb.engine.slaves import slave_connected
from bbweb.status.builder import CANCELLED, EXCEPTION
from tests.actions.conftest import OPEN_CFG
from tests.support.history import claim, force, run

W1 = ("slave1", "pw1")


def wpost(client, path, body=None, auth=W1):  # type: ignore[no-untyped-def]
    return client.post("/api/worker" + path, json=body or {}, auth=auth)


@pytest.fixture
def m(make_master):  # type: ignore[no-untyped-def]
    return make_master(OPEN_CFG)


@pytest.fixture
def app(m):  # type: ignore[no-untyped-def]
    application = m.app()
    yield application
    application.extensions["bbweb"].db.dispose()


def build_row(m, buildid):  # type: ignore[no-untyped-def]
    with m.db.read() as conn:
        return conn.execute(sa.select(builds).where(builds.c.id == buildid)).one()


def test_stop_records_who_and_why_and_the_build_ends_as_exception(m):
    force(m, "runtests", reason="r")
    claimed = claim(m, "slave1", 100.0)
    with m.db.write() as conn:
        assert actions.stop_build(conn, claimed.buildid, "Ann <a@x>", "  wrong branch ", 101.0)
        assert not actions.stop_build(conn, claimed.buildid, "Bob", "again")  # once only
    row = build_row(m, claimed.buildid)
    assert row.stop_requested == ("The web-page 'stop build' button was pressed by "
                                  "'Ann <a@x>': wrong branch")
    assert row.stopped_by == "Ann <a@x>" and row.stop_requested_at == 101.0
    run(m, claimed.buildid, {}, 102.0)  # the next step is never handed out
    row = build_row(m, claimed.buildid)
    assert row.results == EXCEPTION and json.loads(row.text) == ["exception", "interrupted"]
    with m.db.write() as conn:  # a finished build cannot be stopped
        assert not actions.stop_build(conn, claimed.buildid, "Ann", "")


def test_stop_without_comments_says_so(m):
    assert actions.stop_reason("x", "").endswith("'x': <no reason specified>")


def test_cancel_a_pending_request_completes_it_as_cancelled(m):
    force(m, "runtests")
    force(m, "docs")
    with m.db.read() as conn:
        brids = actions.pending_request_ids(conn)
    assert len(brids) == 2
    claim(m, "slave1", 100.0)  # takes the oldest (runtests)
    with m.db.write() as conn:
        assert not actions.cancel_request(conn, brids[0], "Ann", "too late")  # claimed
        assert actions.cancel_request(conn, brids[1], "Ann", " not needed ", now=200.0)
        assert not actions.cancel_request(conn, brids[1], "Ann", "twice")
    with m.db.read() as conn:
        row = conn.execute(sa.select(buildrequests).where(buildrequests.c.id == brids[1])).one()
        bs = conn.execute(sa.select(buildsets).where(buildsets.c.id == row.buildsetid)).one()
        assert actions.pending_request_ids(conn) == []
    assert (row.complete, row.results, row.cancelled_by, row.cancel_reason,
            row.cancelled_at) == (True, CANCELLED, "Ann", "not needed", 200.0)
    assert bs.complete and bs.results == CANCELLED


def test_pending_requests_containing_a_change(m, app):
    client = app.test_client()
    assert client.post("/change_hook/base", data={"author": "a", "revision": "r1"}
                       ).status_code == 202
    force(m, "docs")
    with m.db.read() as conn:
        everything = actions.pending_request_ids(conn)
        with_change = actions.pending_request_ids(conn, changeid=1)
        none = actions.pending_request_ids(conn, changeid=99)
    assert len(everything) == 3 and len(with_change) == 2 and none == []
    with m.db.write() as conn:
        assert len(actions.cancel_requests(conn, with_change, "Ann", "bad change")) == 2
    with m.db.read() as conn:
        assert actions.pending_request_ids(conn) == [everything[-1]]


def test_rebuild_exact_uses_got_revision_and_keeps_forced_properties(m):
    force(m, "runtests", reason="first", branch="main", properties={"jobs": 3})
    claimed = claim(m, "slave1", 100.0)
    with m.db.write() as conn, pytest.raises(actions.ActionError, match="still not finished"):
        actions.rebuild(conn, m.config, claimed.buildid, "Ann")
    run(m, claimed.buildid, {}, 101.0, props={"got_revision": "abc123"})
    with m.db.write() as conn:
        bsid, brids = actions.rebuild(conn, m.config, claimed.buildid, "Ann <a@x>", "flaky")
        bsid2, _ = actions.rebuild(conn, m.config, claimed.buildid, "Ann", "", "updated")
        with pytest.raises(actions.ActionError, match="unknown sourcestamp choice"):
            actions.rebuild(conn, m.config, claimed.buildid, "Ann", "", "latest")
    with m.db.read() as conn:
        bs = conn.execute(sa.select(buildsets).where(buildsets.c.id == bsid)).one()
        stamp = conn.execute(sa.select(sourcestamps).join(bss, bss.c.sourcestampid ==
                                                          sourcestamps.c.id)
                             .where(bss.c.buildsetid == bsid)).one()
        stamp2 = conn.execute(sa.select(sourcestamps).join(bss, bss.c.sourcestampid ==
                                                           sourcestamps.c.id)
                              .where(bss.c.buildsetid == bsid2)).one()
        props = {r.name: json.loads(r.value) for r in conn.execute(
            sa.select(buildset_properties).where(buildset_properties.c.buildsetid == bsid))}
    assert bs.reason == "The web-page 'rebuild' button was pressed by 'Ann <a@x>': flaky"
    assert list(brids) == ["runtests"]
    assert (stamp.branch, stamp.revision) == ("main", "abc123")
    assert (stamp2.branch, stamp2.revision) == ("main", None)  # the original stamp
    assert props["jobs"] == 3 and props["owner"] == "Ann <a@x>"
    assert props["rebuild_of"] == "runtests #0"


def test_clean_shutdown_state_and_when_it_is_due(m, app):
    client = app.test_client()
    force(m, "runtests")
    claimed = claim(m, "slave1", 100.0)
    force(m, "runtests")
    with m.db.write() as conn:
        assert actions.request_clean_shutdown(conn, "Ann", "upgrade", now=5.0)
        assert not actions.request_clean_shutdown(conn, "Bob")
        assert actions.clean_shutdown_state(conn) == {"by": "Ann", "at": 5.0,
                                                      "reason": "upgrade"}
        assert not actions.clean_shutdown_due(conn)  # a build is running
    wpost(client, "/hello", {"info": {}}, auth=("slave2", "pw2"))
    assert wpost(client, "/claim", {"wait": 0.5}, auth=("slave2", "pw2")).status_code == 204
    run(m, claimed.buildid, {}, 101.0)
    with m.db.write() as conn:
        assert actions.clean_shutdown_due(conn)
        assert actions.cancel_clean_shutdown(conn, "Ann")
        assert not actions.cancel_clean_shutdown(conn, "Ann")
    resp = wpost(client, "/claim", {"wait": 2}, auth=("slave2", "pw2"))
    assert resp.status_code == 200 and resp.get_json()["build"]["builder"] == "runtests"


def test_paused_worker_gets_no_build(m, app):
    client = app.test_client()
    wpost(client, "/hello", {"info": {}})
    force(m, "docs")
    with m.db.write() as conn:
        assert actions_slaves.set_paused(conn, "slave1", True, "Ann", now=7.0)
        assert not actions_slaves.set_paused(conn, "slave1", True, "Ann")
    assert wpost(client, "/claim", {"wait": 0.5}).status_code == 204
    with m.db.write() as conn:
        assert actions_slaves.set_paused(conn, "slave1", False, "Bob")
    assert wpost(client, "/claim", {"wait": 2}).get_json()["build"]["builder"] == "docs"


def test_graceful_shutdown_tells_an_idle_worker_to_go_and_a_new_connection_forgets_it(
        m, app):
    client = app.test_client()
    force(m, "docs")
    with m.db.write() as conn:  # not connected: nothing to shut down
        assert not actions_slaves.request_graceful_shutdown(conn, "slave1", "Ann")
    wpost(client, "/hello", {"info": {}})
    with m.db.write() as conn:
        assert actions_slaves.request_graceful_shutdown(conn, "slave1", "Ann")
        assert not actions_slaves.request_graceful_shutdown(conn, "slave1", "Ann")
    resp = wpost(client, "/claim", {"wait": 5})
    assert resp.get_json() == {"build": None, "shutdown": True}  # and no build was taken
    with m.db.read() as conn:
        assert len(actions.pending_request_ids(conn)) == 1
    wpost(client, "/hello", {"info": {}})  # the worker started again
    assert wpost(client, "/claim", {"wait": 2}).get_json()["build"]["builder"] == "docs"


def test_ping_is_a_round_trip_through_heartbeat_or_claim(m, app):
    client = app.test_client()
    wpost(client, "/hello", {"info": {}})
    with m.db.write() as conn:
        result = actions_slaves.ping_slaves(conn, ["slave1", "slave2"], "Ann", now=10.0)
    assert result.pinged == ["slave1"] and result.offline == ["slave2"]
    hb = wpost(client, "/heartbeat", {"running": []}).get_json()
    assert hb == {"commands": [{"type": "ping", "token": 10.0}]}
    resp = wpost(client, "/claim", {"wait": 5})  # an idle worker hears it at once
    assert resp.get_json() == {"build": None, "commands": [{"type": "ping", "token": 10.0}]}
    assert wpost(client, "/pong", {"token": 9.0}).get_json() == {"answered": False}
    assert wpost(client, "/pong", {"token": "x"}).status_code == 400
    assert wpost(client, "/pong", {"token": 10.0}).get_json() == {"answered": True}
    assert wpost(client, "/heartbeat", {}).get_json() == {"commands": []}
    with m.db.read() as conn:
        from bbweb.status.actions import slave_actions

        info = slave_actions(conn, ["slave1"])["slave1"]
    assert info.ping_requested_by == "Ann" and info.ping_round_trip is not None


def test_events_are_emitted(m):
    force(m, "runtests")
    claimed = claim(m, "slave1", 100.0)
    with m.db.write() as conn:
        slave_connected(conn, "slave2", {})
        actions.stop_build(conn, claimed.buildid, "Ann", "x")
        actions_slaves.set_paused(conn, "slave2", True, "Ann")
        actions.request_clean_shutdown(conn, "Ann")
        from bbweb.engine.events import read_events

        kinds = [e["kind"] for e in read_events(conn, 0)]
    assert {"build.stop_requested", "slave.paused", "master.clean_shutdown"} <= set(kinds)


def test_the_daemon_stops_after_a_clean_shutdown_and_a_new_start_forgets_it(m):
    import threading

    from bbweb.daemon.main import DaemonOptions, MasterDaemon
    from bbweb.daemon.shutdown import forget_clean_shutdown

    force(m, "runtests")
    claimed = claim(m, "slave1", 100.0)
    with m.db.write() as conn:
        actions.request_clean_shutdown(conn, "Ann")
    daemon = MasterDaemon(m.config, m.db, [], "test-daemon",
                          DaemonOptions(liveness_interval=0.1, tick_interval=0.1,
                                        heartbeat_timeout=3600))
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,))
    thread.start()
    try:
        thread.join(1.0)
        assert thread.is_alive()  # a build is still running
        run(m, claimed.buildid, {}, 101.0)
        thread.join(10)
        assert not thread.is_alive() and daemon.clean_shutdown_done
    finally:
        stop.set()
        thread.join(10)
    forget_clean_shutdown(m.db)
    with m.db.read() as conn:
        assert not actions.shutting_down(conn)
