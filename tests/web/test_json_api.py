"""``/json`` documents: every resource of 0.8's JSON API, with known content built through
the engine (no worker), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.changes import ChangeInput, add_change
from tests.support.history import claim, force, run

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Test Project'
c['titleURL'] = 'http://example.org/project'
c['buildbotURL'] = 'http://bb.example.org/'
c['db_url'] = DB_URL
c['metrics'] = {'log_interval': 0}
c['properties'] = {'global_prop': 'g'}

class DescribedSource:
    def describe(self):
        return 'GitPoller watching git://example.org/repo.git'

class PlainSource:
    pass

c['change_source'] = [DescribedSource(), PlainSource()]
c['slaves'] = [BuildSlave('slave1', 'pw'), BuildSlave('slave2', 'pw'),
               BuildSlave('slave3', 'pw')]
two = BuildFactory([ShellCommand(command=['make'], name='compile'),
                    ShellCommand(command=['make', 'test'], name='test')])
one = BuildFactory([ShellCommand(command=['make', 'html'], name='html')])
c['builders'] = [
    BuilderConfig(name='runtests', slavenames=['slave1', 'slave2'], factory=two,
                  category='core'),
    BuilderConfig(name='docs', slavenames=['slave1'], factory=one, builddir='docs-dir'),
    BuilderConfig(name='lonely', slavenames=['slave3'], factory=one),
]
c['schedulers'] = [
    SingleBranchScheduler(name='all', branch=None, builderNames=['runtests', 'docs']),
    ForceScheduler(name='force', builderNames=['runtests', 'docs', 'lonely']),
]
"""

SLAVE1_INFO = {"host": "host1.example.org", "admin": "Admin <admin@example.org>",
               "version": "0.8.9", "access_uri": "ssh://host1.example.org"}
T0 = 1_700_000_000.0








def build_scenario(master) -> dict[str, Any]:
    """runtests #0 (slave1, FAILURE, from alice's change), docs #0 (slave1, SUCCESS),
    runtests #1 (slave2, SUCCESS, forced), runtests #2 (slave1, running), one pending
    request on runtests and one on lonely; slave1 connected, slave2 disconnected, slave3
    never seen."""
    cfg = master.config
    with master.db.write() as conn:
        sync_builders(conn, cfg)
        es.slave_connected(conn, "slave1", SLAVE1_INFO, now=T0)
        es.slave_connected(conn, "slave2", {"host": "host2"}, now=T0)
        changeid = add_change(conn, cfg, ChangeInput(
            author="alice <alice@example.org>", comments="fix the frobnicator",
            files=["src/b.c", "src/a.c"], revision="abc123", when=T0 + 0.5,
            branch=None, category="bugfix", revlink="http://vcs/abc123",
            properties={"ticket": 42}, repository="git://example.org/repo.git",
            project="frob"), now=T0 + 1)
    r0 = claim(master, "slave1", T0 + 10)
    assert (r0.builder, r0.number) == ("runtests", 0)
    run(master, r0.buildid, {"test": 1}, T0 + 11, props={"got_revision": "abc123"})
    d0 = claim(master, "slave1", T0 + 20)
    assert (d0.builder, d0.number) == ("docs", 0)
    run(master, d0.buildid, {}, T0 + 21)
    force(master, "runtests", reason="try again", owner="bob")
    r1 = claim(master, "slave2", T0 + 30)
    assert (r1.builder, r1.number) == ("runtests", 1)
    run(master, r1.buildid, {}, T0 + 31)
    with master.db.write() as conn:
        es.mark_disconnected(conn, es.slave_id(conn, "slave2"), "slave2")
    force(master, "runtests", reason="third", owner="carol")
    r2 = claim(master, "slave1", T0 + 40)
    assert (r2.builder, r2.number) == ("runtests", 2)
    with master.db.write() as conn:
        spec = eb.next_step(conn, cfg, r2.buildid, now=T0 + 41)
        eb.append_step_log(conn, cfg, spec["id"], "stdio", [("o", "building\n")])
    force(master, "runtests", reason="queued", owner="dave", properties={"pprop": "x"})
    force(master, "lonely", reason="nobody home", owner="erin")
    return {"changeid": changeid, "running": r2.buildid}


@pytest.fixture
def scenario(master_json, client_json):
    return build_scenario(master_json)


@pytest.fixture
def master_json(make_master):
    return make_master(CFG)


@pytest.fixture
def app_json(master_json):
    application = master_json.app()
    yield application
    application.extensions["bbweb"].db.dispose()


@pytest.fixture
def client_json(app_json):
    return app_json.test_client()


def get(client, url: str, status: int = 200) -> Any:
    resp = client.get(url)
    assert resp.status_code == status, (url, resp.status_code, resp.data[:500])
    return json.loads(resp.data)



def is_time(value: Any) -> bool:
    return isinstance(value, float)


# -- root, project, change sources, metrics ---------------------------------------------------

def test_root_document_has_every_child(scenario, client_json):
    doc = get(client_json, "/json")
    assert sorted(doc) == ["builders", "change_sources", "metrics", "project", "slaves"]
    assert doc["project"] == get(client_json, "/json/project")
    assert doc["builders"] == get(client_json, "/json/builders")
    assert doc["slaves"] == get(client_json, "/json/slaves")
    assert doc["change_sources"] == get(client_json, "/json/change_sources")
    assert sorted(doc["builders"]) == ["docs", "lonely", "runtests"]
    # builder documents without their children
    assert "builds" not in doc["builders"]["runtests"]


def test_project(scenario, client_json):
    assert get(client_json, "/json/project") == {
        "title": "Test Project", "titleURL": "http://example.org/project",
        "buildbotURL": "http://bb.example.org/"}


def test_change_sources_describe_or_class_name(scenario, client_json):
    assert get(client_json, "/json/change_sources") == {
        "0": {"description": "GitPoller watching git://example.org/repo.git"},
        "1": {"description": "PlainSource"}}


def test_metrics_are_real_counters(scenario, client_json):
    doc = get(client_json, "/json/metrics")
    assert sorted(doc) == ["alarms", "counters"]
    c = doc["counters"]
    assert c["changes.latest_number"] == scenario["changeid"]
    assert c["builds.started"] == 4  # runtests 0-2, docs 0
    assert c["builds.running"] == 1
    assert c["buildrequests.pending"] == 2
    assert (c["slaves.connected"], c["slaves.configured"]) == (1, 3)
    assert c["events.latest_id"] > 0
    assert doc["alarms"] == {"attached_slaves": ["WARN", "1/3"]}


def test_metrics_null_without_c_metrics(client):
    assert get(client, "/json/metrics") is None
    assert get(client, "/json")["metrics"] is None


# -- builders ---------------------------------------------------------------------------------

def test_builder_documents(scenario, client_json):
    runtests = get(client_json, "/json/builders/runtests")
    assert runtests == {
        "basedir": "runtests", "category": "core", "slaves": ["slave1", "slave2"],
        "schedulers": ["all", "force"], "cachedBuilds": [0, 1, 2], "currentBuilds": [2],
        "state": "building", "pendingBuilds": 1}
    docs = get(client_json, "/json/builders/docs")
    assert docs == {
        "basedir": "docs-dir", "category": None, "slaves": ["slave1"],
        "schedulers": ["all", "force"], "cachedBuilds": [0], "currentBuilds": [],
        "state": "idle", "pendingBuilds": 0}
    lonely = get(client_json, "/json/builders/lonely")
    assert (lonely["state"], lonely["pendingBuilds"], lonely["cachedBuilds"]) == (
        "offline", 1, [])
    assert get(client_json, "/json/builders") == {
        "runtests": runtests, "docs": docs, "lonely": lonely}


def test_builds_lists_every_number(scenario, client_json):
    assert get(client_json, "/json/builders/runtests/builds") == {
        "0": None, "1": None, "2": None}
    assert get(client_json, "/json/builders/lonely/builds") == {}


def test_finished_build_document(scenario, client_json):
    b = get(client_json, "/json/builders/runtests/builds/0")
    assert sorted(b) == sorted([
        "builderName", "number", "sourceStamps", "reason", "blame", "properties", "times",
        "text", "results", "slave", "logs", "eta", "steps", "currentStep"])
    assert b["builderName"] == "runtests" and b["number"] == 0
    assert b["results"] == 2 and b["text"] == ["failed", "test"]
    assert b["slave"] == "slave1"
    assert b["reason"] == "The SingleBranchScheduler scheduler named 'all' triggered this build"
    assert b["blame"] == ["alice <alice@example.org>"]
    assert b["times"] == [T0 + 10, T0 + 15] and all(map(is_time, b["times"]))
    assert b["eta"] is None and b["currentStep"] is None
    props = b["properties"]
    assert [p[0] for p in props] == sorted(p[0] for p in props)
    assert all(isinstance(p, list) and len(p) == 3 for p in props)
    assert ["got_revision", "abc123", "ShellCommand"] in props
    assert ["ticket", 42, "Change"] in props
    assert ["buildnumber", 0, "Build"] in props
    assert b["logs"] == [
        ["stdio", "http://bb.example.org/builders/runtests/builds/0/steps/compile/logs/stdio"],
        ["stdio", "http://bb.example.org/builders/runtests/builds/0/steps/test/logs/stdio"]]
    compile_step, test_step = b["steps"]
    assert compile_step == {
        "name": "compile", "text": ["compile"], "results": [0, []], "isStarted": True,
        "isFinished": True, "statistics": {}, "times": [T0 + 11, T0 + 12],
        "expectations": [], "eta": None, "urls": {}, "step_number": 0, "hidden": False,
        "logs": [["stdio", "http://bb.example.org/builders/runtests/builds/0/steps/compile"
                           "/logs/stdio"]]}
    assert test_step["results"] == [2, ["test"]]
    assert test_step["text"] == ["test", "failed"] and test_step["step_number"] == 1
    [ss] = b["sourceStamps"]
    assert ss == {
        "revision": "abc123", "hasPatch": False, "branch": None, "project": "frob",
        "repository": "git://example.org/repo.git", "codebase": "",
        "changes": [get(client_json, "/json/builders/runtests/builds/0/source_stamp/changes/"
                        f"{scenario['changeid']}")]}


def test_running_build_document(scenario, client_json):
    b = get(client_json, "/json/builders/runtests/builds/2")
    assert b["results"] is None and b["text"] == []
    assert b["times"] == [T0 + 40, None]
    assert b["currentStep"]["name"] == "compile"
    assert b["currentStep"]["isStarted"] and not b["currentStep"]["isFinished"]
    assert b["currentStep"]["results"] == [None, []]
    pending_step = b["steps"][1]
    assert (pending_step["isStarted"], pending_step["times"], pending_step["logs"]) == (
        False, [None, None], [])
    assert b["blame"] == [] and b["slave"] == "slave1"
    assert ["owner", "carol", "Force Build Form"] in b["properties"]


def test_relative_build_numbers(scenario, client_json):
    assert get(client_json, "/json/builders/runtests/builds/-1")["number"] == 2  # running
    assert get(client_json, "/json/builders/runtests/builds/-3")["number"] == 0
    assert get(client_json, "/json/builders/runtests/builds/_all/-2")["number"] == 1
    assert get(client_json, "/json/builders/runtests/builds/_all/1") == get(
        client_json, "/json/builders/runtests/builds/1")
    assert get(client_json, "/json/builders/runtests/builds/+1")["number"] == 1
    get(client_json, "/json/builders/runtests/builds/-4", 404)
    get(client_json, "/json/builders/runtests/builds/3", 404)


def test_all_builds_are_the_newest_max(scenario, client_json):
    every = get(client_json, "/json/builders/runtests/builds/_all")
    assert sorted(every) == ["0", "1", "2"]
    assert every["1"] == get(client_json, "/json/builders/runtests/builds/1")
    assert sorted(get(client_json, "/json/builders/runtests/builds/_all?max=2")) == ["1", "2"]
    assert get(client_json, "/json/builders/runtests/builds/_all?max=0") == {}
    assert get(client_json, "/json/builders/lonely/builds/_all") == {}


def test_source_stamp_and_changes(scenario, client_json):
    base = "/json/builders/runtests/builds/0/source_stamp"
    ss = get(client_json, base)
    assert ss == get(client_json, "/json/builders/runtests/builds/0")["sourceStamps"][0]
    n = scenario["changeid"]
    change = get(client_json, f"{base}/changes/{n}")
    assert change == {
        "number": n, "branch": None, "category": "bugfix",
        "who": "alice <alice@example.org>", "comments": "fix the frobnicator",
        "revision": "abc123", "rev": "abc123", "when": T0 + 0.5,
        "at": change["at"], "files": [{"name": "src/b.c"}, {"name": "src/a.c"}],
        "revlink": "http://vcs/abc123", "properties": [["ticket", 42, "Change"]],
        "repository": "git://example.org/repo.git", "codebase": "", "project": "frob"}
    # "Ddd DD Mon YYYY HH:MM:SS", server-local time
    import time
    assert change["at"] == time.strftime("%a %d %b %Y %H:%M:%S", time.localtime(T0 + 0.5))
    assert get(client_json, f"{base}/changes") == {str(n): change}
    assert get(client_json, "/json/builders/runtests/builds/1/source_stamp/changes") == {}
    get(client_json, f"{base}/changes/{n + 1}", 404)


def test_steps_by_index_and_name(scenario, client_json):
    base = "/json/builders/runtests/builds/0/steps"
    steps = get(client_json, base)
    assert sorted(steps) == ["0", "1"]
    assert steps["1"] == get(client_json, f"{base}/1") == get(client_json, f"{base}/test")
    assert steps["0"]["name"] == "compile"
    # 0.8 indexed the step list as Python does: -1 is the last step
    assert get(client_json, f"{base}/-1") == steps["1"]
    assert get(client_json, f"{base}/-2") == steps["0"]
    get(client_json, f"{base}/-3", 404)
    get(client_json, f"{base}/2", 404)
    get(client_json, f"{base}/nosuch", 404)


def test_slaves(scenario, client_json):
    slaves = get(client_json, "/json/slaves")
    assert sorted(slaves) == ["slave1", "slave2", "slave3"]
    s1 = slaves["slave1"]
    assert sorted(s1) == sorted(["name", "access_uri", "host", "admin", "version", "connected",
                                 "runningBuilds", "info", "builders"])
    assert (s1["host"], s1["admin"], s1["version"], s1["access_uri"]) == (
        SLAVE1_INFO["host"], SLAVE1_INFO["admin"], SLAVE1_INFO["version"],
        SLAVE1_INFO["access_uri"])
    assert s1["info"] == SLAVE1_INFO and s1["connected"] is True
    assert [b["number"] for b in s1["runningBuilds"]] == [2]
    assert s1["runningBuilds"][0] == get(client_json, "/json/builders/runtests/builds/2")
    # finished builds only; the running #2 is in runningBuilds
    assert s1["builders"] == {"runtests": [0], "docs": [0]}
    s2 = slaves["slave2"]
    assert (s2["connected"], s2["host"], s2["runningBuilds"]) == (False, "host2", [])
    assert s2["builders"] == {"runtests": [1]}
    assert slaves["slave3"] == {
        "name": "slave3", "access_uri": None, "host": None, "admin": None, "version": None,
        "connected": False, "runningBuilds": [], "info": {}, "builders": {"lonely": []}}
    assert get(client_json, "/json/slaves/slave2") == s2
    get(client_json, "/json/slaves/nosuch", 404)


def test_numbuilds_window(scenario, client_json):
    def recent(n: int) -> dict[str, list[int]]:
        return get(client_json, f"/json/slaves/slave1?numbuilds={n}")["builders"]

    assert recent(1) == {"runtests": [], "docs": [0]}  # runtests' newest (#2) is running
    assert recent(3) == {"runtests": [0], "docs": [0]}
    assert recent(0) == {"runtests": [], "docs": []}


def test_builder_slaves(scenario, client_json):
    doc = get(client_json, "/json/builders/runtests/slaves")
    assert sorted(doc) == ["slave1", "slave2"]
    assert doc["slave1"] == get(client_json, "/json/slaves/slave1")
    assert get(client_json, "/json/builders/runtests/slaves/slave2") == doc["slave2"]
    get(client_json, "/json/builders/runtests/slaves/slave3", 404)  # not this builder's


def test_pending_builds(scenario, client_json):
    [req] = get(client_json, "/json/builders/runtests/pendingBuilds")
    assert sorted(req) == ["builderName", "builds", "properties", "source", "submittedAt"]
    assert req["builderName"] == "runtests" and is_time(req["submittedAt"])
    assert req["builds"] == []
    assert req["properties"] == [["owner", "dave", "Force Build Form"],
                                 ["pprop", "x", "Force Build Form"],
                                 ["reason", "queued", "Force Build Form"],
                                 ["scheduler", "force", "Scheduler"]]
    assert req["source"] == {"revision": None, "hasPatch": False, "branch": None,
                             "changes": [], "project": "", "repository": "", "codebase": ""}
    assert get(client_json, "/json/builders/docs/pendingBuilds") == []


def test_retried_request_lists_its_earlier_build(scenario, master_json, client_json):
    # slave1 vanishes: its running build ends and the request goes back to the queue
    with master_json.db.write() as conn:
        eb.abandon_builds_of_slave(conn, master_json.config, es.slave_id(conn, "slave1"))
    pending = get(client_json, "/json/builders/runtests/pendingBuilds")
    retried = [r for r in pending if r["builds"]]
    assert len(retried) == 1
    assert retried[0]["builds"][0]["number"] == 2
    assert retried[0]["builds"][0]["results"] == 4
    assert get(client_json, "/json/builders/runtests")["pendingBuilds"] == 2


def test_patched_sourcestamp(master_json, client_json):
    from bbweb.engine.buildsets import create_buildset, create_sourcestamp

    with master_json.db.write() as conn:
        sync_builders(conn, master_json.config)
        es.slave_connected(conn, "slave1", {}, now=T0)
        ssid = create_sourcestamp(conn, branch="dev", revision="r9", patch={
            "level": 1, "body": b"--- a\n+++ b\n", "subdir": "src", "author": "pat",
            "comment": "try this"})
        create_buildset(conn, master_json.config, sourcestampids=[ssid],
                        builder_names=["docs"], reason="try")
    claimed = claim(master_json, "slave1", T0 + 1)
    ss = get(client_json, f"/json/builders/docs/builds/{claimed.number}/source_stamp")
    assert ss["hasPatch"] is True
    assert (ss["patch_level"], ss["patch_body"], ss["patch_subdir"], ss["patch_author"],
            ss["patch_comment"]) == (1, "--- a\n+++ b\n", "src", "pat", "try this")
    assert (ss["branch"], ss["revision"]) == ("dev", "r9")
