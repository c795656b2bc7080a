"""Status push and GitHub statuses end to end: gunicorn, the real ``bbweb master`` daemon
and a real worker; a change through /change_hook/base builds on the worker; a receiver
process gets 0.8's packets and a GitHub stand-in the commit statuses."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import start_live_master, stop_live_master, wait_for
from tests.support.github_api import GitHubApi
from tests.support.push_receiver import PushReceiver

TOKEN = "ghp_e2e"
REVISION = "feedfacecafebeef0123456789abcdef01234567"

CFG = r"""
from bbweb.config import *
from bbweb.status.status_push import HttpStatusPush
from bbweb.status.github import GitHubStatus
c = BuildmasterConfig = {}
c['title'] = 'Push E2E'
c['buildbotURL'] = 'http://127.0.0.1:PORT/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('w1', 'pw1')]
bad = BuildFactory([ShellCommand(name='compile', descriptionDone=['compile'],
                                 command=['sh', '-c', 'echo oops >&2; exit 2'])])
good = BuildFactory([ShellCommand(name='test', command=['true'])])
c['builders'] = [BuilderConfig(name='broken', slavenames=['w1'], factory=bad),
                 BuilderConfig(name='fine', slavenames=['w1'], factory=good)]
c['schedulers'] = [SingleBranchScheduler(name='main', branch='main',
                                         builderNames=['broken', 'fine'])]
c['status'] = [WebStatus(http_port=PORT, change_hook_dialects={'base': True}),
               HttpStatusPush(serverUrl=RECEIVER, bufferDelay=0.1, retryDelay=0.2,
                              secret='e2e-secret'),
               GitHubStatus(token=TOKEN, repoOwner='octo', repoName='live', baseURL=API)]
"""


@pytest.fixture(scope="module")
def services(tmp_path_factory, e2e_db_url):  # type: ignore[no-untyped-def]
    receiver = PushReceiver(tmp_path_factory.mktemp("e2e-push")).start()
    api = GitHubApi(TOKEN).start()
    yield receiver, api
    api.stop()
    receiver.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory, e2e_db_url, services):  # type: ignore[no-untyped-def]
    receiver, api = services
    cfg = (CFG.replace("RECEIVER", repr(receiver.url)).replace("TOKEN", repr(TOKEN))
           .replace("API", repr(api.url)))
    master = start_live_master(tmp_path_factory.mktemp("e2e-push") / "master", cfg,
                               e2e_db_url)
    try:
        yield master
    finally:
        stop_live_master(master)


def names(packets):  # type: ignore[no-untyped-def]
    return [p["event"] for p in packets]


def test_change_to_packets_and_statuses(live, services):
    receiver, api = services
    start = receiver.wait_for_packets(lambda ps: ps if "start" in names(ps) else None, 60,
                                      what="the start packet")
    assert start[0]["project"] == "Push E2E"
    live.start_worker("w1", "pw1")
    receiver.wait_for_packets(lambda ps: "slaveConnected" in names(ps), 60,
                              what="the worker's slaveConnected")
    resp = requests.post(live.url + "/change_hook/base", timeout=10, data={
        "author": "carol", "comments": "break the build", "revision": REVISION,
        "branch": "main", "files": '["a.c"]'})
    assert resp.status_code == 202, resp.text
    packets = receiver.wait_for_packets(
        lambda ps: ps if names(ps).count("buildFinished") == 2 else None, 120,
        what="both builds' buildFinished")
    ids = [p["id"] for p in packets]
    assert ids == sorted(set(ids))
    events = names(packets)
    for name in ("changeAdded", "requestSubmitted", "buildsetSubmitted", "buildStarted",
                 "stepStarted", "stepFinished", "buildFinished", "builderChangedState"):
        assert name in events, name
    assert events.index("changeAdded") < events.index("buildStarted")
    finished = {p["payload"]["build"]["builderName"]: p["payload"]["build"]
                for p in packets if p["event"] == "buildFinished"}
    assert finished["broken"]["results"] == 2 and finished["fine"]["results"] == 0
    assert finished["fine"]["number"] == 0 and finished["fine"]["slave"] == "w1"
    change = next(p for p in packets if p["event"] == "changeAdded")["payload"]["change"]
    assert (change["who"], change["revision"]) == ("carol", REVISION)
    slave = next(p for p in packets if p["event"] == "slaveConnected")["payload"]["slave"]
    assert slave["name"] == "w1" and slave["connected"] is True
    assert all(r["headers"]["x-bbweb-signature-256"].startswith("sha256=")
               for r in receiver.requests())

    statuses = wait_for(lambda: api.statuses() if len(api.statuses()) == 4 else None, 60,
                        what="four commit statuses")
    assert api.invalid == []
    by_context: dict[str, list[str]] = {}
    for s in statuses:
        assert s.path == f"/repos/octo/live/statuses/{REVISION}"
        by_context.setdefault(s.body["context"], []).append(s.body["state"])
    assert by_context == {"bbweb/broken": ["pending", "failure"],
                          "bbweb/fine": ["pending", "success"]}
    target = next(s.body["target_url"] for s in statuses if s.body["context"] == "bbweb/fine")
    assert target == f"{live.url}/builders/fine/builds/0"
    data = live.get_json("/json/notifications")
    assert {"httpstatuspush", "github"} <= set((data or {}).get("notifiers", {}))
