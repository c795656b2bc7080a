"""/change_hook/poller end to end: the web records a poll request, the daemon polls."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from bbweb.daemon.pollers import CONSUMER_NAME
from bbweb.db.schema import events
from bbweb.engine.poll_requests import POLL_REQUESTED
from tests.changes.repos import (
    GitRepo,
    SvnRepo,
    all_changes,
    count_buildrequests,
    poller_cfg,
    saved_state,
)
from tests.daemon.conftest import DaemonThread, latest_event, saved_cursor, wait_for

HOUR = 3600  # pollers in these tests never poll on their own after launch


@pytest.fixture
def daemons():
    """``daemons(basedir, holder=...)``: master daemons in threads, stopped at the end."""
    started: list[DaemonThread] = []

    def factory(basedir, **kwargs):
        d = DaemonThread(basedir, **kwargs).start()
        started.append(d)
        return d

    yield factory
    for d in started:
        d.stop_event.set()
    for d in started:
        d.thread.join(30)


def requests_recorded(master) -> list[list[str]]:
    import json

    with master.db.read() as conn:
        rows = conn.execute(sa.select(events.c.payload).where(events.c.kind == POLL_REQUESTED)
                            .order_by(events.c.id)).scalars()
        return [json.loads(r)["pollers"] for r in rows]


def make(make_master, tmp_path, dialects="{'poller': True}", launch=True):
    git = GitRepo(tmp_path / "git")
    git.commit("initial", {"README": "x\n"})
    svn = SvnRepo(tmp_path / "svn")
    master = make_master(poller_cfg(
        f"[GitPoller({git.url!r}, pollInterval={HOUR}, pollAtLaunch={launch}), "
        f"SVNPoller({svn.url!r}, split_file=split_file_branches, pollInterval={HOUR}, "
        f"pollAtLaunch={launch})]", dialects=dialects))
    return master, git, svn


def client_for(master):
    app = master.app()
    return app, app.test_client()


def test_get_and_post_trigger_a_poll_and_a_build(make_master, tmp_path, daemons):
    master, git, svn = make(make_master, tmp_path)
    app, client = client_for(master)
    try:
        daemons(master.basedir, holder="d")
        wait_for(lambda: saved_state(master, git.url) and saved_state(master, svn.url),
                 what="the pollers' first polls (at launch)")
        rev = git.commit("pushed", {"a.c": "a\n"})
        resp = client.get("/change_hook/poller", query_string={"poller": git.url})
        assert resp.status_code == 200, resp.data
        assert resp.get_data(as_text=True) == (
            f"no changes found: poll requested for {git.url}\n")
        wait_for(lambda: all_changes(master), timeout=10, what="the daemon to poll git")
        assert [(c["revision"], c["branch"]) for c in all_changes(master)] == [
            (rev, "master")]
        wait_for(lambda: count_buildrequests(master), what="a build request")

        r = svn.commit("svn work", {"trunk/s.c": "s\n"})
        resp = client.post(f"/change_hook/poller?poller={svn.url}")
        assert resp.status_code == 200, resp.data
        wait_for(lambda: len(all_changes(master)) == 2, timeout=10,
                 what="the daemon to poll svn")
        assert all_changes(master)[1]["revision"] == str(r)
        assert requests_recorded(master) == [[git.url], [svn.url]]
    finally:
        app.extensions["bbweb"].db.dispose()


def test_no_argument_asks_every_allowed_poller(make_master, tmp_path):
    master, git, svn = make(make_master, tmp_path)
    app, client = client_for(master)
    try:
        assert client.head("/change_hook/poller").status_code == 200
        assert requests_recorded(master) == []  # HEAD asks nothing
        resp = client.get("/change_hook/poller")
        assert resp.status_code == 200
        assert requests_recorded(master) == [sorted([git.url, svn.url])]
    finally:
        app.extensions["bbweb"].db.dispose()
    restricted, git2, _svn2 = make(make_master, tmp_path / "r",
                                   dialects="{'poller': {'allowed': [GIT]}}"
                                   .replace("GIT", repr(str(tmp_path / "r" / "git"))))
    app, client = client_for(restricted)
    try:
        assert client.get("/change_hook/poller").status_code == 200
        assert requests_recorded(restricted)[-1] == [git2.url]  # (one database)
    finally:
        app.extensions["bbweb"].db.dispose()


def test_unknown_and_disallowed_pollers_are_400(make_master, tmp_path):
    master, git, svn = make(make_master, tmp_path,
                            dialects="{'poller': {'allowed': [GIT]}}"
                            .replace("GIT", repr(str(tmp_path / "git"))))
    app, client = client_for(master)
    try:
        resp = client.get("/change_hook/poller",
                          query_string=[("poller", git.url), ("poller", "nope"),
                                        ("poller", svn.url)])
        assert resp.status_code == 400
        assert resp.get_data(as_text=True) == f"Could not find pollers: nope,{svn.url}\n"
        resp = client.post("/change_hook/poller", data={"poller": "evil\r\nX-Injected: 1"})
        assert resp.status_code == 400
        assert "X-Injected" not in resp.headers
        assert "\r" not in resp.get_data(as_text=True).rstrip("\n")
        assert requests_recorded(master) == []  # nothing is asked when one name is wrong
        assert client.get("/change_hook/poller", query_string={"poller": git.url}
                          ).status_code == 200
        assert requests_recorded(master) == [[git.url]]
    finally:
        app.extensions["bbweb"].db.dispose()


def test_no_pollers_and_a_disabled_dialect(make_master, tmp_path):
    from tests.conftest import DEFAULT_CFG

    master = make_master(DEFAULT_CFG.replace("{'base': True}", "{'poller': True}"))
    app, client = client_for(master)
    try:
        resp = client.get("/change_hook/poller")
        assert resp.status_code == 200
        assert "there are no pollers to poll" in resp.get_data(as_text=True)
        assert client.get("/change_hook/poller?poller=x").status_code == 400
    finally:
        app.extensions["bbweb"].db.dispose()
    master2, _git, _svn = make(make_master, tmp_path / "off", dialects="{'base': True}")
    app, client = client_for(master2)
    try:
        assert client.get("/change_hook/poller").status_code == 404
    finally:
        app.extensions["bbweb"].db.dispose()


def test_a_request_made_while_the_daemon_is_down_is_served_later(make_master, tmp_path,
                                                                 daemons):
    master, git, _svn = make(make_master, tmp_path)
    d = daemons(master.basedir, holder="d1")
    wait_for(lambda: saved_state(master, git.url), what="the first poll")
    assert d.stop() == 0
    # no launch polls from now on: only the recorded request can find the commit
    master2 = make_master(poller_cfg(
        f"GitPoller({git.url!r}, pollInterval={HOUR})"), name="master")
    rev = git.commit("pushed while the daemon was down")
    app, client = client_for(master2)
    try:
        assert client.get(f"/change_hook/poller?poller={git.url}").status_code == 200
    finally:
        app.extensions["bbweb"].db.dispose()
    daemons(master2.basedir, holder="d2")
    wait_for(lambda: all_changes(master2), timeout=10, what="the recorded request to be served")
    assert [c["revision"] for c in all_changes(master2)] == [rev]


def test_a_burst_of_requests_is_served_by_few_polls(make_master, tmp_path, daemons,
                                                     caplog):
    caplog.set_level(logging.INFO, logger="bbweb.daemon.pollers")
    master, git, _svn = make(make_master, tmp_path)
    app, client = client_for(master)
    try:
        daemons(master.basedir, holder="d")
        wait_for(lambda: saved_state(master, git.url), what="the first poll")
        rev = git.commit("one push")
        for _ in range(20):
            assert client.get(f"/change_hook/poller?poller={git.url}").status_code == 200
        last = latest_event(master)
        wait_for(lambda: (saved_cursor(master, CONSUMER_NAME) or 0) >= last, timeout=10,
                 what="every request to be served")
        # requests recorded while a poll was pending share it: far fewer polls than 20
        polls = caplog.text.count("on request (event")
        assert 1 <= polls <= 4, caplog.text
        assert [c["revision"] for c in all_changes(master)] == [rev]  # never twice
    finally:
        app.extensions["bbweb"].db.dispose()
