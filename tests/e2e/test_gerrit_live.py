"""Gerrit end to end: a patchset's change through /change_hook/base carrying Gerrit's event
properties, a real worker builds it, the real ``bbweb master`` daemon posts the start
message and the review with the system's ssh client to a real sshd standing in for Gerrit,
and /json/notifications reports both deliveries."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from tests.e2e.conftest import LiveMaster, start_live_master, stop_live_master, wait_for
from tests.support.sshd import FakeGerrit

SHA = "9c3e1f5a7b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e"
EVENT = {"event.change.id": "Iabc0123456789abc0123456789abc0123456789",
         "event.change.number": 4711, "event.change.project": "tools/bbweb",
         "event.patchSet.number": 3, "event.patchSet.revision": SHA}

CFG = r"""
from bbweb.config import *
from bbweb.status.status_gerrit import GerritStatusPush, defaultReviewCB
c = BuildmasterConfig = {}
c['title'] = 'Gerrit E2E'
c['buildbotURL'] = 'http://127.0.0.1:PORT/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('w1', 'pw1')]
c['builders'] = [BuilderConfig(name='verify', slavenames=['w1'], factory=BuildFactory(
    [ShellCommand(name='test', command=['sh', '-c', 'echo tested'])]))]
c['schedulers'] = [AnyBranchScheduler(name='patchsets', builderNames=['verify'])]

def started(builderName, build, arg):
    return 'Build %s started: %s' % (builderName, build.getReason())

c['status'] = [
    WebStatus(http_port=PORT, change_hook_dialects={'base': {
        'allow_properties': ['event.change.id', 'event.change.number',
                             'event.change.project', 'event.patchSet.number',
                             'event.patchSet.revision']}}),
    GerritStatusPush(GERRIT_ARGS, reviewCB=defaultReviewCB, startCB=started),
]
"""


@pytest.fixture(scope="module")
def gerrit(tmp_path_factory) -> Iterator[FakeGerrit]:  # type: ignore[no-untyped-def]
    """One server per live master (per database), so each sees only its own reviews."""
    server = FakeGerrit(tmp_path_factory.mktemp("e2e-gerrit")).start()
    server.clear(version="3.9.1")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory, e2e_db_url, gerrit) -> Iterator[LiveMaster]:  # type: ignore[no-untyped-def]
    args = ", ".join(f"{k}={v!r}" for k, v in gerrit.notifier_args().items())
    master = start_live_master(tmp_path_factory.mktemp("e2e-gerrit") / "master",
                               CFG.replace("GERRIT_ARGS", args), e2e_db_url)
    master.start_worker("w1", "pw1")
    try:
        yield master
    finally:
        stop_live_master(master)


def test_patchset_to_review(live, gerrit):
    def following():  # type: ignore[no-untyped-def]
        data = live.get_json("/json/notifications")
        return data is not None and "gerrit" in data.get("notifiers", {})

    wait_for(following, 60, what="/json/notifications to answer")
    resp = requests.post(live.url + "/change_hook/base", timeout=10, data={
        "author": "dana", "comments": "Fix the frobnicator", "revision": SHA,
        "branch": "refs/changes/11/4711/3", "project": "tools/bbweb",
        "properties": json.dumps(EVENT)})
    assert resp.status_code == 202, resp.text
    reviews = wait_for(lambda: len(gerrit.reviews()) == 2 and gerrit.reviews(), 120,
                       what="the start message and the review")
    assert [r["argv"] for r in reviews] == [
        ["gerrit", "review", "--project", "tools/bbweb", "--message",
         "Build verify started: The AnyBranchScheduler scheduler named 'patchsets' "
         "triggered this build", SHA],
        ["gerrit", "review", "--project", "tools/bbweb", "--message",
         "Buildbot finished compiling your patchset\non configuration: verify\n"
         "The result is: SUCCESS\n", "--label", "Verified=1", SHA]]

    def recorded():  # type: ignore[no-untyped-def]
        rows = (live.get_json("/json/notifications") or {}).get("notifiers", {}).get(
            "gerrit", [])
        return rows if len(rows) == 2 and {r["outcome"] for r in rows} == {"sent"} else None

    rows = wait_for(recorded, 30, what="both deliveries on /json/notifications")
    assert sorted(r["what"] for r in rows) == ["verify #0 review (Verified +1)",
                                               "verify #0 start"]
    assert {tuple(r["recipients"]) for r in rows} == {(f"tools/bbweb {SHA}",)}
