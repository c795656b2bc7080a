"""The worker protocol's guarantees at the HTTP level: a repeated request is answered as the
first time and acted on once, a claim is a lease the worker confirms, and hello/heartbeat
end the builds a worker no longer runs. (Real processes and injected faults: tests/e2e.)"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import sqlalchemy as sa

from bbweb.db.schema import buildrequests, builds, change_properties, logs, steps
from bbweb.engine.builders import sync_builders
from bbweb.engine.changes import ChangeInput, add_change
from bbweb.engine.logs import read_text
from bbweb.engine.worker_protocol import long_poll_limit
from bbweb.status.builder import EXCEPTION, SUCCESS
from bbweb.values.validation import MAX_CARRIED_DEPTH, MAX_ENTRY_DEPTH, TOO_DEEP

S1 = ("slave1", "pw1")
S2 = ("slave2", "pw2")


def post(client, path, body=None, auth=S1, key=None):  # type: ignore[no-untyped-def]
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/api/worker" + path, json=body or {}, auth=auth, headers=headers)


def new_key() -> str:
    return uuid.uuid4().hex


def add_changes(master, n=1, **props):  # type: ignore[no-untyped-def]
    with master.db.write() as conn:
        sync_builders(conn, master.config)
        for _ in range(n):
            add_change(conn, master.config, ChangeInput(author="a", properties=props))


def all_builds(master):  # type: ignore[no-untyped-def]
    with master.db.read() as conn:
        return conn.execute(sa.select(builds).order_by(builds.c.id)).all()


def request_row(master, brid):  # type: ignore[no-untyped-def]
    with master.db.read() as conn:
        return conn.execute(sa.select(buildrequests).where(buildrequests.c.id == brid)).one()


def lease(client, seq, auth=S1, key=None):  # type: ignore[no-untyped-def]
    resp = post(client, "/claim", {"wait": 0, "seq": seq}, auth=auth, key=key or new_key())
    assert resp.status_code == 200, resp.data
    return resp.get_json()["lease"]["request"]


def start(client, session, seq, auth=S1):  # type: ignore[no-untyped-def]
    brid = lease(client, seq, auth)
    resp = post(client, f"/leases/{brid}/confirm", {"session": session, "seq": seq},
                auth=auth, key=new_key())
    assert resp.status_code == 200, resp.data
    return resp.get_json()["build"]


def test_a_claim_is_a_lease_and_repeats_get_the_same_answer(master, client):
    add_changes(master)
    post(client, "/hello", {"info": {}, "session": "s-a", "running": []})
    key = new_key()
    first = post(client, "/claim", {"wait": 0, "seq": 1}, key=key)
    assert first.status_code == 200
    brid = first.get_json()["lease"]["request"]
    assert first.get_json()["lease"]["expires_in"] > 0
    # the answer was lost: the worker asks again with the same key and gets the same lease
    again = post(client, "/claim", {"wait": 0, "seq": 1}, key=key)
    assert again.status_code == 200 and again.data == first.data
    assert all_builds(master) == []  # no build until the worker confirms
    assert request_row(master, brid).claimed_by is not None

    confirm_key = new_key()
    body = {"session": "s-a", "seq": 1}
    confirmed = post(client, f"/leases/{brid}/confirm", body, key=confirm_key)
    assert confirmed.status_code == 200
    build = confirmed.get_json()["build"]
    assert build["number"] == 0 and build["properties"]["slavename"] == "slave1"
    repeat = post(client, f"/leases/{brid}/confirm", body, key=confirm_key)
    assert repeat.data == confirmed.data
    rows = all_builds(master)
    assert [r.id for r in rows] == [build["id"]]
    assert rows[0].worker_session == "s-a" and rows[0].worker_seq == 1
    assert request_row(master, brid).lease_expires_at is None


def test_a_key_names_one_request(master, client):
    add_changes(master)
    key = new_key()
    post(client, "/claim", {"wait": 0, "seq": 1}, key=key)
    resp = post(client, "/builds/1/next_step", key=key)
    assert resp.status_code == 422
    assert "already used for /claim" in resp.get_json()["error"]
    resp = post(client, "/claim", {"wait": 0}, key="x" * 65)
    assert resp.status_code == 400 and "Idempotency-Key" in resp.get_json()["error"]


def test_an_unconfirmed_lease_runs_out_and_the_request_goes_to_another(master, client):
    add_changes(master)
    brid = lease(client, 1, auth=S2)
    # slave2 never confirms (its answer was lost and it died); make the lease run out
    with master.db.write() as conn:
        conn.execute(buildrequests.update().where(buildrequests.c.id == brid)
                     .values(lease_expires_at=time.time() - 1))
    assert lease(client, 1, auth=S1) == brid
    late = post(client, f"/leases/{brid}/confirm", {"session": "x", "seq": 1}, auth=S2,
                key=new_key())
    assert late.status_code == 409 and "not leased to worker slave2" in late.get_json()["error"]
    build = post(client, f"/leases/{brid}/confirm", {"session": "y", "seq": 1},
                 key=new_key()).get_json()["build"]
    assert [(r.id, r.slaveid is not None) for r in all_builds(master)] == [(build["id"], True)]


def test_a_lease_counts_against_max_builds(master, client):
    add_changes(master, 2)
    lease(client, 1, auth=S2)  # slave2 has max_builds=1
    assert post(client, "/claim", {"wait": 0, "seq": 2}, auth=S2).status_code == 204


def test_repeated_step_calls_act_once(master, client):
    add_changes(master)
    build = start(client, "s", 1)
    key = new_key()
    step = post(client, f"/builds/{build['id']}/next_step", key=key)
    assert step.status_code == 200
    # a repeat of the same call must not mark the running step "lost"
    again = post(client, f"/builds/{build['id']}/next_step", key=key)
    assert again.data == step.data
    stepid = step.get_json()["step"]["id"]
    log_key = new_key()
    for _ in range(3):
        resp = post(client, f"/steps/{stepid}/log", {"chunks": [["o", "hello\n"]]},
                    key=log_key)
        assert resp.get_json() == {"stop": False}
    post(client, f"/steps/{stepid}/log", {"chunks": [["o", "world\n"]]}, key=new_key())
    finish_key = new_key()
    for _ in range(2):
        resp = post(client, f"/steps/{stepid}/finish", {"rc": 0}, key=finish_key)
        assert resp.status_code == 200
    assert post(client, f"/builds/{build['id']}/next_step",
                key=new_key()).get_json() == {"step": None}
    with master.db.read() as conn:
        step_row = conn.execute(sa.select(steps).where(steps.c.id == stepid)).one()
        logid = conn.execute(sa.select(logs.c.id).where(logs.c.stepid == stepid,
                                                        logs.c.name == "stdio")).scalar()
        text = read_text(conn, logid, streams="o")
        result = conn.execute(sa.select(builds.c.results)
                              .where(builds.c.id == build["id"])).scalar()
    assert text == "hello\nworld\n"
    assert step_row.results == SUCCESS and "lost" not in json.loads(step_row.text)
    assert result == SUCCESS


def test_a_new_next_step_while_a_step_runs_still_means_it_was_lost(master, client):
    add_changes(master)
    build = start(client, "s", 1)
    post(client, f"/builds/{build['id']}/next_step", key=new_key())
    post(client, f"/builds/{build['id']}/next_step", key=new_key())
    with master.db.read() as conn:
        texts = [json.loads(t) for (t,) in conn.execute(
            sa.select(steps.c.text).where(steps.c.buildid == build["id"]))]
    assert texts[0][-1] == "lost"


def test_hello_ends_the_builds_a_restarted_worker_forgot(master, client):
    add_changes(master)
    post(client, "/hello", {"info": {}, "session": "first", "running": []})
    build = start(client, "first", 1)
    post(client, f"/builds/{build['id']}/next_step", key=new_key())
    # the process was killed and started again at once, well within the heartbeat timeout
    resp = post(client, "/hello", {"info": {}, "session": "second", "running": []},
                key=new_key())
    assert resp.get_json()["ended"] == [build["id"]]
    (row,) = all_builds(master)
    assert row.results == EXCEPTION and json.loads(row.text) == ["exception", "slave", "lost"]
    with master.db.read() as conn:
        step_text = conn.execute(sa.select(steps.c.text).where(
            steps.c.buildid == build["id"], steps.c.number == 0)).scalar()
    assert json.loads(step_text)[-2:] == ["slave", "lost"]
    # the request runs again, on the same worker, at once
    again = start(client, "second", 1)
    assert again["id"] != build["id"]
    assert request_row(master, row.buildrequestid).claimed_by is not None


def test_hello_releases_unconfirmed_leases_and_keeps_listed_builds(master, client):
    add_changes(master, 2)
    kept = start(client, "one", 1)
    brid = lease(client, 2)
    resp = post(client, "/hello", {"info": {}, "session": "one", "running": [kept["id"]]})
    assert resp.get_json()["ended"] == []
    assert request_row(master, brid).claimed_by is None
    assert [r.finished_at for r in all_builds(master)] == [None]


def test_hello_without_running_reconciles_nothing(master, client):
    """A worker of before this protocol says hello without ``running``: as before, its
    builds are left to the heartbeat timeout."""
    add_changes(master)
    build = post(client, "/claim", {"wait": 0}).get_json()["build"]  # no seq: old worker
    post(client, "/hello", {"info": {}})
    assert [r.id for r in all_builds(master) if r.finished_at is None] == [build["id"]]


def test_heartbeat_ends_what_the_worker_dropped_but_not_what_it_is_receiving(master, client):
    add_changes(master, 2)
    b1 = start(client, "S", 1)
    b2 = start(client, "S", 2)
    # a heartbeat taken before build 2 was listed: claim 2 had not settled yet
    post(client, "/heartbeat", {"running": [b1["id"]], "session": "S", "settled": 1})
    assert [r.finished_at for r in all_builds(master)] == [None, None]
    # a heartbeat of another process of the same name touches nothing of ours
    post(client, "/heartbeat", {"running": [], "session": "other", "settled": 9})
    assert [r.finished_at for r in all_builds(master)] == [None, None]
    # claim 2 settled and build 2 is not listed: the worker dropped it
    hb = post(client, "/heartbeat", {"running": [b1["id"]], "session": "S", "settled": 2})
    assert hb.status_code == 200
    rows = all_builds(master)
    assert rows[0].finished_at is None
    assert rows[1].id == b2["id"] and rows[1].results == EXCEPTION
    assert request_row(master, rows[1].buildrequestid).claimed_by is None


def test_bad_protocol_fields_are_400(client):
    for path, body in (("/hello", {"session": 5, "running": []}),
                       ("/hello", {"session": "s", "running": ["x"]}),
                       ("/heartbeat", {"running": [], "session": "s", "settled": -1}),
                       ("/claim", {"wait": 0, "seq": "one"}),
                       ("/leases/1/confirm", {"session": "s", "seq": True})):
        resp = post(client, path, body)
        assert resp.status_code == 400, (path, body)
        assert "error" in resp.get_json()


def _store_deep_property(master, depth=980):  # type: ignore[no-untyped-def]
    """A change property nested ``depth`` levels, stored as a change hook of before input
    validation could have stored it (json cannot even encode it from a deep stack)."""
    add_changes(master, deep="placeholder")
    with master.db.write() as conn:
        conn.execute(change_properties.update().where(change_properties.c.name == "deep")
                     .values(value="[" * depth + "1" + "]" * depth))


def test_a_deeply_nested_property_cannot_strand_a_claim(master, client):
    _store_deep_property(master)
    build = start(client, "s", 1, auth=S2)  # slave2: one build at a time
    assert "deep" not in build["properties"]
    (row,) = all_builds(master)
    assert row.finished_at is not None and row.results == EXCEPTION
    assert json.loads(row.text) == ["exception", "bad", "properties"]
    req = request_row(master, row.buildrequestid)
    assert req.complete and req.results == EXCEPTION
    with master.db.read() as conn:
        logid = conn.execute(sa.select(logs.c.id).join(steps, steps.c.id == logs.c.stepid)
                             .where(steps.c.buildid == row.id,
                                    logs.c.name == "err.text")).scalar()
        message = read_text(conn, logid)
    assert "property 'deep' (Change) nests 980 levels deep" in message
    assert post(client, f"/builds/{row.id}/next_step", auth=S2).get_json() == {"step": None}
    # the worker's only slot is free again: the next change builds normally
    add_changes(master)
    assert start(client, "s", 2, auth=S2)["properties"]["slavename"] == "slave2"


def test_a_stored_property_between_the_entry_and_carried_limits_still_builds(master, client):
    """Deeper than a value may enter now, shallow enough to carry: a row an older version
    stored builds with it whole, as it did, while pages show it cut at the entry limit."""
    levels = (MAX_ENTRY_DEPTH + MAX_CARRIED_DEPTH) // 2
    _store_deep_property(master, levels)
    build = start(client, "s", 1, auth=S2)
    value, seen = build["properties"]["deep"], 0
    while isinstance(value, list):
        value, seen = value[0], seen + 1
    assert (value, seen) == (1, levels)
    (row,) = all_builds(master)
    assert row.finished_at is None  # running, not refused
    page = client.get(f"/json/builders/runtests/builds/{row.number}").get_json()
    shown = dict((name, v) for name, v, _source in page["properties"])["deep"]
    seen = 0
    while isinstance(shown, list):
        shown, seen = shown[0], seen + 1
    assert (shown, seen) == (TOO_DEEP, MAX_ENTRY_DEPTH)


def test_a_deeply_nested_property_through_an_old_style_claim(master, client):
    _store_deep_property(master)
    resp = post(client, "/claim", {"wait": 0}, auth=S2)
    assert resp.status_code == 200
    assert resp.get_json()["build"]["properties"].get("deep") is None
    assert all(r.finished_at is not None for r in all_builds(master))


def test_a_step_result_with_a_too_deep_property_is_refused(master, client):
    add_changes(master)
    build = start(client, "s", 1)
    stepid = post(client, f"/builds/{build['id']}/next_step").get_json()["step"]["id"]

    def finish(levels: int):  # type: ignore[no-untyped-def]
        body = '{"rc": 0, "properties": {"p": ' + "[" * levels + "]" * levels + "}}"
        return client.post(f"/api/worker/steps/{stepid}/finish", auth=S1, data=body,
                           content_type="application/json")

    resp = finish(MAX_CARRIED_DEPTH + 1)
    assert resp.status_code == 400 and "nests more than" in resp.get_json()["error"]
    assert finish(MAX_CARRIED_DEPTH).status_code == 200


def test_claims_do_not_wait_where_the_server_cannot_afford_it(client):
    """The test client, like gunicorn's sync worker class, serves one request at a time
    (wsgi.multithread is false): a long-poll answers at once and says when to poll."""
    resp = post(client, "/claim", {"wait": 20, "seq": 1})
    assert resp.status_code == 204 and resp.headers["X-Poll-After"] == "1"
    resp = post(client, "/claim", {"wait": 0, "seq": 2})
    assert resp.status_code == 204 and "X-Poll-After" not in resp.headers


@pytest.mark.parametrize("multithreaded,threads,expected", [
    (False, None, 0), (True, 1, 0), (True, 2, 0), (True, 3, 1), (True, 16, 4), (True, None, 4),
])
def test_long_poll_limit(multithreaded, threads, expected):
    assert long_poll_limit(multithreaded, threads) == expected


def test_hello_tells_the_heartbeat_interval_and_timeout(master, client):
    """What the worker needs to stay alive: how often to heartbeat, and how long the master
    waits before declaring it lost (its idle claims last at most half of that)."""
    answer = post(client, "/hello", {"info": {}, "session": "t", "running": []}).get_json()
    assert answer["heartbeat_interval"] == 5.0
    assert answer["heartbeat_timeout"] == 30.0
