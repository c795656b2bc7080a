"""Fewer round trips per build: the confirmation of a lease may hand over the first step,
and a step's finish may carry the step's last output (compressed frames, base64 in the
JSON body) and hand over the next step. Each is one transaction whose answer is kept for
repeats; the stored rows are those of the separate calls. A worker that sends none of the
new fields (an older one) gets the answers it always got."""

from __future__ import annotations

import base64
import json

import sqlalchemy as sa

from bbweb.db.schema import builds, events, steps
from bbweb.engine.logs import read_text
from bbweb.status.builder import SUCCESS
from bbweb.worker import logframes
from tests.worker.test_log_frames import stored
from tests.worker.test_protocol import add_changes, lease, new_key, post

TWO_STEPS = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('slave1', 'pw1')]
f = BuildFactory()
f.addStep(ShellCommand(command=['echo', 'one'], name='one'))
f.addStep(ShellCommand(command=['echo', 'two'], name='two'))
c['builders'] = [BuilderConfig(name='b', slavenames=['slave1'], factory=f)]
c['schedulers'] = [SingleBranchScheduler(name='all', branch=None, builderNames=['b'])]
c['status'] = [WebStatus(http_port=8010)]
"""


def frames_field(*chunks: tuple[str, bytes]) -> dict[str, str]:
    return {"name": "stdio",
            "frames": base64.b64encode(logframes.encode(list(chunks))).decode()}


def confirm(client, seq=1, key=None, step=True):  # type: ignore[no-untyped-def]
    brid = lease(client, seq)
    body = {"session": "s", "seq": seq, **({"step": True} if step else {})}
    return post(client, f"/leases/{brid}/confirm", body, key=key or new_key())


def event_kinds(master) -> list[str]:  # type: ignore[no-untyped-def]
    with master.db.read() as conn:
        return [k for (k,) in conn.execute(sa.select(events.c.kind).order_by(events.c.id))
                if k.startswith(("build.", "step."))]


def test_hello_announces_what_the_master_takes(client):
    answer = post(client, "/hello", {"info": {}, "session": "t", "running": []}).get_json()
    assert answer["features"] == ["finish-log"]


def test_a_build_in_three_calls_stores_what_five_would(make_master):
    master = make_master(TWO_STEPS)
    client = master.app().test_client()
    add_changes(master)
    answer = confirm(client).get_json()
    first = answer["step"]
    assert first["name"] == "one" and first["command"] == ["echo", "one"]
    assert answer["build"]["number"] == 0
    out = frames_field(("h", b"echo one\n"), ("o", b"one\n"))
    answer = post(client, f"/steps/{first['id']}/finish",
                  {"rc": 0, "log": out, "next": True}, key=new_key()).get_json()
    assert answer["stop"] is False and answer["step"]["name"] == "two"
    second = answer["step"]
    answer = post(client, f"/steps/{second['id']}/finish",
                  {"rc": 0, "log": frames_field(("o", b"two\n")), "next": True},
                  key=new_key()).get_json()
    assert answer == {"stop": False, "step": None}
    with master.db.read() as conn:
        build = conn.execute(sa.select(builds)).one()
        rows = conn.execute(sa.select(steps).order_by(steps.c.number)).all()
    assert build.results == SUCCESS and build.finished_at is not None
    assert [(r.results, json.loads(r.text)) for r in rows] == [
        (SUCCESS, ["one"]), (SUCCESS, ["two"])]
    log, _ = stored(master, first["id"])
    with master.db.read() as conn:
        assert read_text(conn, log.id) == "echo one\none\n"
    assert event_kinds(master) == ["build.started", "step.started", "step.finished",
                                   "step.started", "step.finished", "build.finished"]


def test_repeats_of_the_combined_calls_act_once(make_master):
    master = make_master(TWO_STEPS)
    client = master.app().test_client()
    add_changes(master)
    key = new_key()
    first = confirm(client, key=key)
    brid = first.get_json()["build"]["id"]
    again = post(client, "/leases/1/confirm", {"session": "s", "seq": 1, "step": True},
                 key=key)
    assert again.data == first.data
    stepid = first.get_json()["step"]["id"]
    key = new_key()
    body = {"rc": 0, "log": frames_field(("o", b"once\n")), "next": True}
    done = post(client, f"/steps/{stepid}/finish", body, key=key)
    assert post(client, f"/steps/{stepid}/finish", body, key=key).data == done.data
    log, rows = stored(master, stepid)
    assert len(rows) == 1 and log.num_bytes == 5
    with master.db.read() as conn:
        started = conn.execute(sa.select(sa.func.count()).select_from(steps).where(
            steps.c.buildid == brid, steps.c.started_at.isnot(None))).scalar()
    assert started == 2  # the second step started once, not again by the repeat
    assert event_kinds(master).count("step.started") == 2


def test_an_older_worker_gets_the_answers_it_always_got(master, client):
    add_changes(master)
    answer = confirm(client, step=False).get_json()
    assert set(answer) == {"build"}
    step = post(client, f"/builds/{answer['build']['id']}/next_step",
                key=new_key()).get_json()["step"]
    finish = post(client, f"/steps/{step['id']}/finish", {"rc": 0}, key=new_key())
    assert finish.get_json() == {"stop": False}


def test_output_with_a_finish_of_a_step_already_ended_is_refused(master, client):
    add_changes(master)
    stepid = confirm(client).get_json()["step"]["id"]
    assert post(client, f"/steps/{stepid}/finish", {"rc": 0}, key=new_key()).status_code \
        == 200
    late = post(client, f"/steps/{stepid}/finish",
                {"rc": 0, "log": frames_field(("o", b"late\n"))}, key=new_key())
    assert late.status_code == 409 and "already finished" in late.get_json()["error"]
    assert stored(master, stepid)[1] == []


def test_bad_output_with_a_finish_is_400_and_changes_nothing(master, client):
    add_changes(master)
    stepid = confirm(client).get_json()["step"]["id"]
    for log in ("text", {"frames": "not base64!"}, {"name": "", "frames": ""},
                {"frames": base64.b64encode(b"o\0\0\0\5\0\0\0\3abc").decode()}):
        resp = post(client, f"/steps/{stepid}/finish", {"rc": 0, "log": log},
                    key=new_key())
        assert resp.status_code == 400, (log, resp.data)
    with master.db.read() as conn:
        assert conn.execute(sa.select(steps.c.finished_at)
                            .where(steps.c.id == stepid)).scalar() is None
