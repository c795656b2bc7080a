"""The worker protocol at the HTTP level (what `bbweb worker` speaks)."""

from __future__ import annotations

import sqlalchemy as sa

from bbweb.db.schema import builds, slaves
from bbweb.engine.builds import request_stop

W1 = ("slave1", "pw1")


def post(client, path, body=None, auth=W1):
    return client.post("/api/worker" + path, json=body or {}, auth=auth)


def test_bad_credentials_are_401(client, caplog):
    resp = post(client, "/hello", {"info": {}}, auth=("slave1", "nope"))
    assert resp.status_code == 401
    assert resp.get_json() == {"error": "worker name or password is wrong"}
    assert "Basic" in resp.headers["WWW-Authenticate"]
    assert post(client, "/claim", {"wait": 0}, auth=("ghost", "pw1")).status_code == 401
    assert client.post("/api/worker/claim", json={}).status_code == 401
    assert "worker authentication failed for 'slave1'" in caplog.text


def test_hello_records_info(master, client):
    resp = post(client, "/hello", {"info": {"host": "box1", "admin": "Ann <a@x>",
                                            "version": "0.1", "nested": {"no": 1}}})
    assert resp.status_code == 200
    assert resp.get_json()["builders"] == ["runtests", "docs"]
    with master.db.read() as conn:
        row = conn.execute(sa.select(slaves).where(slaves.c.name == "slave1")).one()
    assert row.connected
    assert '"host": "box1"' in row.info and "nested" not in row.info


def test_full_protocol(master, client):
    post(client, "/hello", {"info": {"host": "h"}})
    resp = post(client, "/claim", {"wait": 0})
    assert resp.status_code == 204
    assert client.post("/change_hook/base", data={"author": "a", "revision": "r1"}
                       ).status_code == 202
    resp = post(client, "/claim", {"wait": 5})
    assert resp.status_code == 200
    build = resp.get_json()["build"]
    assert build["builder"] in ("runtests", "docs") and build["number"] == 0
    assert build["properties"]["revision"] == "r1"
    step = post(client, f"/builds/{build['id']}/next_step").get_json()["step"]
    assert step["command"] == ["echo", "hello"] and step["type"] == "shell"
    assert step["workdir"] == "build" and step["timeout"] == 1200
    resp = post(client, f"/steps/{step['id']}/log",
                {"log": "stdio", "chunks": [["h", "echo hello\n"], ["o", "hello\n"]]})
    assert resp.get_json() == {"stop": False}
    # someone presses stop: the heartbeat and the next log post say so
    with master.db.write() as conn:
        request_stop(conn, build["id"], "stopped by a test")
    hb = post(client, "/heartbeat", {"running": [build["id"]]}).get_json()
    assert hb == {"commands": [{"type": "stop", "build_id": build["id"],
                                "reason": "stopped by a test"}]}
    resp = post(client, f"/steps/{step['id']}/log", {"chunks": [["o", "more\n"]]})
    assert resp.get_json() == {"stop": True}
    resp = post(client, f"/steps/{step['id']}/finish", {"rc": -15, "interrupted": "stopped"})
    assert resp.status_code == 200
    assert post(client, f"/builds/{build['id']}/next_step").get_json() == {"step": None}
    with master.db.read() as conn:
        row = conn.execute(sa.select(builds).where(builds.c.id == build["id"])).one()
    assert row.results == 4 and row.finished_at is not None
    # a finished step takes no more output
    assert post(client, f"/steps/{step['id']}/log",
                {"chunks": [["o", "late\n"]]}).status_code == 409


def test_other_workers_steps_are_404(master, client):
    client.post("/change_hook/base", data={"author": "a"})
    build = post(client, "/claim", {"wait": 1}).get_json()["build"]
    step = post(client, f"/builds/{build['id']}/next_step").get_json()["step"]
    other = ("slave2", "pw2")
    assert post(client, f"/builds/{build['id']}/next_step", auth=other).status_code == 404
    assert post(client, f"/steps/{step['id']}/log", {"chunks": [["o", "x"]]},
                auth=other).status_code == 404
    assert post(client, f"/steps/{step['id']}/finish", {"rc": 0}, auth=other
                ).status_code == 404


def test_bad_bodies_are_400(client):
    client.post("/change_hook/base", data={"author": "a"})
    build = post(client, "/claim", {"wait": 1}).get_json()["build"]
    step = post(client, f"/builds/{build['id']}/next_step").get_json()["step"]
    for body in ({"chunks": "text"}, {"chunks": [["o"]]}, {"chunks": [["x", "text"]]},
                 {"log": "", "chunks": []}):
        resp = post(client, f"/steps/{step['id']}/log", body)
        assert resp.status_code == 400, body
        assert "error" in resp.get_json()
    assert post(client, f"/steps/{step['id']}/finish", {"rc": "zero"}).status_code == 400
    assert post(client, f"/steps/{step['id']}/finish", {"rc": 0, "interrupted": "bored"}
                ).status_code == 400
    assert post(client, "/claim", {"wait": "soon"}).status_code == 400
