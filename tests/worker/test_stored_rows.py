"""Rows that older versions stored before values were checked at entry, as the engine reads
them to build: through the worker API (claims, next steps, hello) and the schedulers'
timers. Not JSON, a lone surrogate, nesting deeper than Python's json can decode: each is
repaired or refused with a logged reason, and never answers 500 or stops a timer. (Pages
showing such rows: tests/web/test_stored_values.py.) The rows are written straight into
the tables, on SQLite and PostgreSQL. And a request body the decoder cannot take is a 400,
like any other refused body."""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa

from bbweb.db.schema import build_properties, change_properties, logs, steps
from bbweb.engine import schedulers
from bbweb.engine.builders import sync_builders
from bbweb.engine.changes import ChangeInput, add_change
from bbweb.engine.logs import read_text
from bbweb.status.builder import EXCEPTION
from tests.worker.test_protocol import S2, add_changes, all_builds, new_key, post, start

NOT_JSON = "{not json"
SURROGATE = '"bad \\ud800 value"'  # what json.dumps made of "bad \ud800 value"


def deep_json(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


def store_change_properties(master, **values: str) -> None:  # type: ignore[no-untyped-def]
    """One change, its properties then overwritten with ``values`` as stored text."""
    add_changes(master, **{name: "placeholder" for name in values})
    with master.db.write() as conn:
        for name, text in values.items():
            conn.execute(change_properties.update().where(change_properties.c.name == name)
                         .values(value=text))


def err_text(master, buildid: int) -> str:  # type: ignore[no-untyped-def]
    with master.db.read() as conn:
        logid = conn.execute(sa.select(logs.c.id).join(steps, steps.c.id == logs.c.stepid)
                             .where(steps.c.buildid == buildid,
                                    logs.c.name == "err.text")).scalar()
        return read_text(conn, logid)


def test_a_claim_refuses_stored_properties_it_cannot_carry_and_names_them(master, client):
    store_change_properties(master, broken=NOT_JSON, deep=deep_json(20000))
    resp = post(client, "/claim", {"wait": 0}, auth=S2)
    assert resp.status_code == 200, resp.data
    build = resp.get_json()["build"]
    assert "broken" not in build["properties"] and "deep" not in build["properties"]
    (row,) = all_builds(master)
    assert row.results == EXCEPTION and json.loads(row.text) == ["exception", "bad",
                                                                 "properties"]
    message = err_text(master, row.id)
    assert "property 'broken' (Change) is not valid JSON" in message
    assert "property 'deep' (Change) nests 20000 levels deep, more than the 100" in message
    # the worker's only slot is free again: the next change builds normally
    add_changes(master)
    assert start(client, "s", 2, auth=S2)["properties"]["slavename"] == "slave2"


def test_a_claim_carries_a_stored_surrogate_repaired(master, client, caplog):
    caplog.set_level(logging.WARNING, logger="bbweb.engine")
    store_change_properties(master, odd=SURROGATE)
    build = start(client, "s", 1, auth=S2)
    assert build["properties"]["odd"] == "bad \ufffd value"
    assert all_builds(master)[0].finished_at is None
    assert "property 'odd' (Change) is used repaired (unpaired surrogate)" in caplog.text


def running_step(master, client):  # type: ignore[no-untyped-def]
    """A build of slave2 (session "one") with its first step running: (build, step id)."""
    add_changes(master)
    post(client, "/hello", {"info": {}, "session": "one", "running": []}, auth=S2)
    build = start(client, "one", 1, auth=S2)
    stepid = post(client, f"/builds/{build['id']}/next_step", auth=S2,
                  key=new_key()).get_json()["step"]["id"]
    return build, stepid


def step_text(master, stepid: int) -> list[str]:  # type: ignore[no-untyped-def]
    with master.db.read() as conn:
        return json.loads(conn.execute(sa.select(steps.c.text)
                                       .where(steps.c.id == stepid)).scalar())


def test_next_step_reads_old_step_texts_and_build_properties(master, client, caplog):
    """A step left running whose stored text cannot be decoded is still marked lost by a
    new next_step, and the build ends on it; a build property that cannot be decoded is
    left out of the steps' rendering, logged."""
    caplog.set_level(logging.WARNING, logger="bbweb.engine")
    build, stepid = running_step(master, client)
    with master.db.write() as conn:
        conn.execute(steps.update().where(steps.c.id == stepid)
                     .values(text=deep_json(20000)))
        conn.execute(build_properties.insert(), [
            {"buildid": build["id"], "name": "broken", "value": NOT_JSON, "source": "Old"},
            {"buildid": build["id"], "name": "deep", "value": deep_json(980),
             "source": "Old"}])
    resp = post(client, f"/builds/{build['id']}/next_step", auth=S2, key=new_key())
    assert resp.status_code == 200, resp.data
    assert resp.get_json() == {"step": None}  # the lost step ended the build
    assert step_text(master, stepid) == ["lost"]
    (row,) = all_builds(master)
    assert row.results == EXCEPTION and json.loads(row.text) == ["exception", "lost"]
    assert f"step {stepid} text nests 20000 levels deep, more than the 100 allowed; " \
           "used as [] instead" in caplog.text
    assert f"build {build['id']} property 'broken' is not valid JSON; the build goes on " \
           "without it" in caplog.text
    assert f"build {build['id']} property 'deep' nests 980 levels deep" in caplog.text


def test_hello_ends_a_forgotten_build_whose_step_text_is_not_json(master, client, caplog):
    caplog.set_level(logging.WARNING, logger="bbweb.engine")
    build, stepid = running_step(master, client)
    with master.db.write() as conn:
        conn.execute(steps.update().where(steps.c.id == stepid).values(text=NOT_JSON))
    resp = post(client, "/hello", {"info": {}, "session": "two", "running": []}, auth=S2,
                key=new_key())
    assert resp.status_code == 200, resp.data
    assert resp.get_json()["ended"] == [build["id"]]
    assert step_text(master, stepid) == ["slave", "lost"]
    assert f"step {stepid} text is not valid JSON; used as [] instead" in caplog.text


TIMER_CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('slave1', 'pw1')]
f = BuildFactory()
f.addStep(ShellCommand(command=['true'], name='t'))
c['builders'] = [BuilderConfig(name='runtests', slavenames=['slave1'], factory=f)]
c['schedulers'] = [SingleBranchScheduler(name='stable', branch=None, treeStableTimer=60,
                                         builderNames=['runtests'])]
c['status'] = []
"""


def test_a_tree_stable_timer_schedules_changes_with_old_property_rows(make_master, caplog):
    """The daemon's timer reads the waiting changes back (``load_changes``): a property it
    cannot decode is left out with the reason logged, and the buildset is still made."""
    caplog.set_level(logging.WARNING, logger="bbweb.engine")
    master = make_master(TIMER_CFG)
    with master.db.write() as conn:
        sync_builders(conn, master.config)
        changeid = add_change(conn, master.config, ChangeInput(
            author="a", properties={"broken": "x", "deep": "x", "odd": "x"}), now=1000.0)
        for name, text in (("broken", NOT_JSON), ("deep", deep_json(20000)),
                           ("odd", SURROGATE)):
            conn.execute(change_properties.update().where(change_properties.c.name == name)
                         .values(value=text))
    with master.db.write() as conn:
        created = schedulers.tick(conn, master.config, now=1061.0)
    assert len(created) == 1
    assert f"change {changeid} property 'broken' is not valid JSON; the schedulers see " \
           "the change without it" in caplog.text
    assert f"change {changeid} property 'deep' nests 20000 levels deep" in caplog.text
    assert f"change {changeid} property 'odd' is used repaired (unpaired surrogate)" \
        in caplog.text


def test_a_request_body_too_deep_to_decode_is_refused(client):
    body = '{"properties": ' + deep_json(20000) + "}"
    resp = client.post("/api/worker/hello", data=body, content_type="application/json",
                       auth=S2)
    assert resp.status_code == 400
    assert resp.get_json() == {"error": "the request body is nested too deeply"}
