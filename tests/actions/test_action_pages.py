"""The action URLs and forms at the HTTP level: POST + CSRF only, Authz decides, the
engine does it, the user is sent back with an escaped message."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from bbweb.db.schema import buildrequests, builds, buildset_properties, slaves
from bbweb.engine import actions
from bbweb.engine.slaves import slave_connected
from bbweb.status.builder import CANCELLED
from tests.actions.conftest import OPEN_CFG, csrf, flashes, post
from tests.support.history import claim, force, run

ACTION_URLS = [
    "/builders/runtests/force", "/builders/runtests/ping", "/builders/runtests/cancelbuild",
    "/builders/runtests/stopchange", "/builders/runtests/builds/0/stop",
    "/builders/runtests/builds/0/rebuild", "/builders/_all/forceall",
    "/builders/_selected/forceselected", "/builders/_all/stopall",
    "/builders/_selected/stopselected", "/builders/_all/cancelpendingall",
    "/builders/_selected/cancelpendingselected", "/builders/_all/stopchangeall",
    "/buildslaves/slave1/shutdown", "/buildslaves/slave1/pause",
    "/buildslaves/slave1/unpause", "/shutdown", "/cancel_shutdown",
]


def pending(m):  # type: ignore[no-untyped-def]
    with m.db.read() as conn:
        return actions.pending_request_ids(conn)


def props_of(m, brid):  # type: ignore[no-untyped-def]
    with m.db.read() as conn:
        bsid = conn.execute(sa.select(buildrequests.c.buildsetid)
                            .where(buildrequests.c.id == brid)).scalar_one()
        return {r.name: (json.loads(r.value), r.source) for r in conn.execute(
            sa.select(buildset_properties).where(buildset_properties.c.buildsetid == bsid))}


def test_get_never_acts_and_posts_need_the_csrf_token(open_master, oclient):
    force(open_master, "runtests")
    with open_master.db.write() as conn:
        slave_connected(conn, "slave1", {})
    for url in ACTION_URLS:
        resp = oclient.get(url + "?forcescheduler=force&id=all&change=1&selected=runtests")
        assert resp.status_code == 405, url
        assert "use POST" in resp.get_data(as_text=True)
        assert oclient.post(url, data={"forcescheduler": "force", "id": "all"}
                            ).status_code == 403, url
    assert len(pending(open_master)) == 1
    with open_master.db.read() as conn:
        assert not actions.shutting_down(conn)
        assert not conn.execute(sa.select(slaves.c.paused)).scalar()


def test_force_validates_and_schedules(open_master, oclient):
    page = oclient.get("/builders/runtests?force.reason=nightly+check&force.flavour=slow")
    html = page.get_data(as_text=True)
    assert 'action="../builders/runtests/force"' in html
    assert 'value="nightly check"' in html and "<option selected>slow</option>" in html
    assert "Build the docs" not in html  # that scheduler cannot build runtests
    resp = post(oclient, "/builders/runtests/force", {
        "forcescheduler": "force", "username": "Ann <ann@example.org>",
        "reason": "try it", "branch": "feature", "revision": "abc", "jobs": "4",
        "flavour": "slow", "checkbox": "clean", "property1_name": "extra",
        "property1_value": "yes"}, "/builders/runtests")
    assert resp.status_code == 303
    assert resp.headers["Location"] == "../../builders/runtests"
    message = flashes(oclient, "/builders/runtests")
    assert "Forced a build of runtests by Ann <ann@example.org>: try it" in message
    [brid] = pending(open_master)
    props = props_of(open_master, brid)
    assert props["jobs"] == (4, "Force Build Form") and props["flavour"][0] == "slow"
    assert props["clean"][0] is True and props["extra"][0] == "yes"
    assert props["owner"][0] == "Ann <ann@example.org>" and props["reason"][0] == "try it"
    with open_master.db.read() as conn:
        from bbweb.engine.builds import build_sourcestamps

        [ss] = build_sourcestamps(conn, brid)
    assert (ss["branch"], ss["revision"]) == ("feature", "abc")


@pytest.mark.parametrize("field,value,message", [
    ("jobs", "many", "'Jobs:' must be a whole number, not 'many'"),
    ("flavour", "medium", "'medium' is not one of the available choices for 'Flavour:'"),
    ("property1_name", "bad name!", "bad property name='bad name!'"),
    # a free property cannot replace a parameter's own value (a strict choice here)
    ("property1_name", "flavour", "bad property name='flavour': that property is set by"),
    ("username", "just-a-name", "must look like 'Full Name <email@example.org>'"),
])
def test_bad_force_input_schedules_nothing(open_master, oclient, field, value, message):
    form = {"forcescheduler": "force", "reason": "r", field: value}
    if field == "property1_name":
        form["property1_value"] = "v"
    resp = post(oclient, "/builders/runtests/force", form, "/builders/runtests")
    assert resp.status_code == 303
    shown = flashes(oclient, "/builders/runtests")
    assert "Nothing forced" in shown and message in shown
    assert pending(open_master) == []


@pytest.mark.parametrize("field,value,message", [
    ("branch", "has space", "bad branch 'has space'"),
    ("revision", "abc;rm", "bad revision 'abc;rm'"),
    ("property1_value", "two words", "bad property name='p', value='two words'"),
])
def test_default_validation_patterns_refuse(open_master, oclient, field, value, message):
    form = {"forcescheduler": "force", "reason": "r", "property1_name": "p", field: value}
    post(oclient, "/builders/runtests/force", form, "/builders/runtests")
    shown = flashes(oclient, "/builders/runtests")
    assert "Nothing forced" in shown and message in shown
    assert pending(open_master) == []


def test_configured_validation_patterns_apply(make_master):
    master = make_master(OPEN_CFG + "\nc['validation'] = {'branch': r'^release/[0-9.]+$',"
                                    " 'property_value': r'^[a-z ]*$'}\n")
    client = master.app().test_client()
    post(client, "/builders/runtests/force", {"forcescheduler": "force", "branch": "main"},
         "/builders/runtests")
    shown = flashes(client, "/builders/runtests")
    assert "bad branch 'main'" in shown and "release/" in shown
    post(client, "/builders/runtests/force", {
        "forcescheduler": "force", "branch": "release/2.1", "property1_name": "note",
        "property1_value": "two words"}, "/builders/runtests")
    assert "Forced a build of runtests" in flashes(client, "/builders/runtests")
    [brid] = pending(master)
    assert props_of(master, brid)["note"][0] == "two words"


def test_force_messages_are_escaped_and_scheduler_is_checked(open_master, oclient):
    post(oclient, "/builders/runtests/force",
         {"forcescheduler": "force", "reason": "<script>alert(1)</script>"},
         "/builders/runtests")
    html = oclient.get("/builders/runtests").get_data(as_text=True)
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    post(oclient, "/builders/runtests/force", {"forcescheduler": "docsonly"})
    assert "cannot build runtests" in flashes(oclient, "/builders/runtests")
    post(oclient, "/builders/runtests/force", {})
    assert "did not say which force scheduler" in flashes(oclient, "/builders/runtests")
    assert len(pending(open_master)) == 1
    assert post(oclient, "/builders/nosuch/force", {"forcescheduler": "force"}
                ).status_code == 404


def test_force_all_and_selected(open_master, oclient):
    html = oclient.get("/builders").get_data(as_text=True)
    assert 'action="./builders/_selected/forceselected"' in html
    assert "on <b>all Builders</b>" in html
    post(oclient, "/builders/_selected/forceselected", {"forcescheduler": "force"})
    assert "select at least one" in flashes(oclient, "/builders")
    post(oclient, "/builders/_selected/forceselected",
         {"forcescheduler": "force", "selected": ["docs", "nosuch"]})
    assert len(pending(open_master)) == 1
    resp = post(oclient, "/builders/_all/forceall", {"forcescheduler": "force"})
    assert resp.headers["Location"] == "../../builders"
    assert "Forced a build of runtests, docs" in flashes(oclient, "/builders")
    assert len(pending(open_master)) == 3


def test_stop_from_the_build_page_records_who_and_why(open_master, oclient):
    force(open_master, "runtests")
    claimed = claim(open_master, "slave1", 100.0)
    html = oclient.get("/builders/runtests/builds/0").get_data(as_text=True)
    assert 'action="../../../builders/runtests/builds/0/stop"' in html
    resp = post(oclient, "/builders/runtests/builds/0/stop", {
        "comments": "<b>oops</b>", "back": "builders/runtests/builds/0"},
        "/builders/runtests/builds/0")
    assert resp.headers["Location"] == "../../../../builders/runtests/builds/0"
    html = oclient.get("/builders/runtests/builds/0").get_data(as_text=True)
    assert ("Stop requested: The web-page &#39;stop build&#39; button was pressed by "
            "&#39;&lt;unknown&gt;&#39;: &lt;b&gt;oops&lt;/b&gt;") in html
    assert "Stop This Build" not in html  # asked already
    run(open_master, claimed.buildid, {}, 101.0)
    html = oclient.get("/builders/runtests/builds/0").get_data(as_text=True)
    assert "Stopped: The web-page" in html and "Resubmit Build" in html
    post(oclient, "/builders/runtests/builds/0/stop", {})
    assert "has already finished" in flashes(oclient, "/builders/runtests/builds/0")
    assert post(oclient, "/builders/runtests/builds/9/stop", {}).status_code == 404


def test_rebuild_from_the_build_page(open_master, oclient):
    force(open_master, "runtests")
    claimed = claim(open_master, "slave1", 100.0)
    post(oclient, "/builders/runtests/builds/0/rebuild", {"comments": "again"})
    assert "still not finished" in flashes(oclient, "/builders/runtests")
    run(open_master, claimed.buildid, {}, 101.0)
    post(oclient, "/builders/runtests/builds/-1/rebuild",
         {"comments": "again", "property1name": "x", "property1value": "1"})
    assert "was resubmitted" in flashes(oclient, "/builders/runtests")
    [brid] = pending(open_master)
    assert props_of(open_master, brid)["x"] == ("1", "Rebuild")
    post(oclient, "/builders/runtests/builds/0/rebuild",
         {"property1name": "bad name", "property1value": "1"})
    assert "bad property name" in flashes(oclient, "/builders/runtests")
    assert len(pending(open_master)) == 1


def test_cancel_one_all_and_by_change(open_master, oclient):
    for _ in range(3):
        force(open_master, "runtests")
    first, second, third = pending(open_master)
    html = oclient.get("/builders/runtests").get_data(as_text=True)
    assert f'name="id" value="{first}"' in html and 'name="id" value="all"' in html
    post(oclient, "/builders/runtests/cancelbuild", {"id": str(first), "comments": "dup"})
    assert "Cancelled 1 pending build request of runtests" in flashes(
        oclient, "/builders/runtests")
    html = oclient.get("/builders/runtests").get_data(as_text=True)
    assert f"request {first} (submitted" in html and "by &lt;unknown&gt;: " in html
    post(oclient, "/builders/runtests/cancelbuild", {"id": str(first)})
    assert "is not pending any more" in flashes(oclient, "/builders/runtests")
    post(oclient, "/builders/runtests/cancelbuild", {"id": "all"})
    assert pending(open_master) == []
    with open_master.db.read() as conn:
        results = [r.results for r in conn.execute(sa.select(buildrequests))]
    assert results == [CANCELLED] * 3 and second and third
    # by change: only requests built from that change
    assert oclient.post("/change_hook/base", data={"author": "a", "revision": "r1"}
                        ).status_code == 202
    force(open_master, "docs")
    change_page = oclient.get("/changes/1").get_data(as_text=True)
    assert 'action="../builders/_all/stopchangeall"' in change_page
    post(oclient, "/builders/runtests/stopchange", {"change": "1"})
    assert "Cancelled 1 pending build request containing change 1" in flashes(
        oclient, "/builders/runtests")
    post(oclient, "/builders/_all/stopchangeall", {"change": "1"})
    assert len(pending(open_master)) == 1  # the forced docs build is left
    post(oclient, "/builders/_all/stopchangeall", {"change": "x"})
    assert "give a change number" in flashes(oclient, "/builders")
    post(oclient, "/builders/_selected/cancelpendingselected", {"selected": "runtests"})
    assert len(pending(open_master)) == 1
    post(oclient, "/builders/_all/cancelpendingall", {})
    assert pending(open_master) == []


def test_stop_all_and_selected(open_master, oclient):
    force(open_master, "runtests")
    force(open_master, "docs")
    a = claim(open_master, "slave1", 100.0)
    b = claim(open_master, "slave1", 100.0)
    html = oclient.get("/builders").get_data(as_text=True)
    assert "Stop Selected Builds" in html and "Stop All Builds" in html
    post(oclient, "/builders/_selected/stopselected", {"selected": "docs", "comments": "x"})
    with open_master.db.read() as conn:
        stops = dict(conn.execute(sa.select(builds.c.id, builds.c.stop_requested)).all())
    assert stops[a.buildid] is None and stops[b.buildid].endswith("': x")
    post(oclient, "/builders/_all/stopall", {})
    assert "Stopping 1 running build" in flashes(oclient, "/builders")


def test_ping_pause_and_graceful_from_the_pages(open_master, oclient):
    post(oclient, "/builders/docs/ping", {})
    assert "Not connected, not pinged: slave1" in flashes(oclient, "/builders/docs")
    with open_master.db.write() as conn:
        slave_connected(conn, "slave1", {})
    post(oclient, "/builders/docs/ping", {})
    assert "Pinged slave1" in flashes(oclient, "/builders/docs")
    html = oclient.get("/builders/docs").get_data(as_text=True)
    assert "by &lt;unknown&gt;:" in html and "waiting for the answer" in html
    html = oclient.get("/buildslaves/slave1").get_data(as_text=True)
    assert "Pause Slave" in html and "Graceful Shutdown" in html
    resp = post(oclient, "/buildslaves/slave1/pause", {"back": "buildslaves/slave1"})
    assert resp.headers["Location"] == "../../buildslaves/slave1"
    html = oclient.get("/buildslaves/slave1").get_data(as_text=True)
    assert "slave1 is paused" in html and "Paused by &lt;unknown&gt;" in html
    assert "Unpause Slave" in html
    post(oclient, "/buildslaves/slave1/unpause", {})
    post(oclient, "/buildslaves/slave1/shutdown", {})
    html = oclient.get("/buildslaves/slave1").get_data(as_text=True)
    assert "will shut down gracefully" in html and "Graceful shutdown asked by" in html
    with open_master.db.read() as conn:
        row = conn.execute(sa.select(slaves).where(slaves.c.name == "slave1")).one()
    assert (row.paused, row.graceful, row.paused_by) == (False, True, "<unknown>")
    post(oclient, "/buildslaves/slave2/shutdown", {})
    assert "slave2 is not connected" in flashes(oclient, "/buildslaves/slave2")
    assert post(oclient, "/buildslaves/nosuch/pause", {}).status_code == 404


def test_clean_shutdown_and_cancel_from_the_root_page(open_master, oclient):
    html = oclient.get("/").get_data(as_text=True)
    assert 'action="./shutdown"' in html and "Clean Shutdown" in html
    resp = post(oclient, "/shutdown", {})
    assert resp.status_code == 303 and resp.headers["Location"] == "./"
    html = oclient.get("/").get_data(as_text=True)
    assert "Clean shutdown started" in html and "Master is shutting down" in html
    assert 'action="./cancel_shutdown"' in html
    post(oclient, "/cancel_shutdown", {})
    html = oclient.get("/").get_data(as_text=True)
    assert "Clean shutdown cancelled" in html and "Master is shutting down" not in html


def test_read_only_site_shows_no_forms_and_refuses(make_master):
    m = make_master(OPEN_CFG.replace("authz=Authz(default_action=True)", "authz=Authz()"))
    app = m.app()
    try:
        client = app.test_client()
        force(m, "runtests")
        with m.db.write() as conn:
            slave_connected(conn, "slave1", {})
        for page in ("/", "/builders", "/builders/runtests", "/buildslaves/slave1",
                     "/one_line_per_build", "/changes/1"):
            html = client.get(page).get_data(as_text=True)
            assert 'class="command' not in html, page
        with client.session_transaction() as sess:  # a valid token: only Authz refuses
            sess["csrf"] = "token"
        for url in ACTION_URLS:
            resp = client.post(url, data={"csrf_token": "token", "id": "all",
                                          "forcescheduler": "force"})
            assert resp.status_code == 303 and resp.headers["Location"].endswith(
                "authzfail"), url
        assert len(pending(m)) == 1
    finally:
        app.extensions["bbweb"].db.dispose()


def test_authz_functions_get_status_objects(make_master):
    cfg = OPEN_CFG.replace(
        "authz=Authz(default_action=True)",
        "authz=Authz(auth=BasicAuth([('ann', 'pw')]), forceBuild=lambda user, b: "
        "b.getName() == 'docs', view=True)").replace(
        "from bbweb.auth import Authz",
        "from bbweb.auth import Authz\nfrom bbweb.auth.backends import BasicAuth")
    m = make_master(cfg)
    app = m.app()
    try:
        client = app.test_client()
        token = csrf(client, "/")
        assert client.post("/login", data={"username": "ann", "passwd": "pw",
                                           "csrf_token": token}).status_code in (302, 303)
        token = csrf(client, "/builders/docs")
        resp = client.post("/builders/runtests/force", data={
            "forcescheduler": "force", "csrf_token": token})
        assert resp.headers["Location"].endswith("authzfail")
        client.post("/builders/docs/force", data={"forcescheduler": "force",
                                                  "csrf_token": token, "reason": "ok"})
        [brid] = pending(m)
        assert props_of(m, brid)["owner"][0] == "ann"
    finally:
        app.extensions["bbweb"].db.dispose()
