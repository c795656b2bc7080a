"""GitPoller against real git repositories: poll() directly, then through the daemon."""

from __future__ import annotations

import logging
import threading

import pytest

from bbweb.changes import PollCancelled, PollError
from bbweb.changes.gitpoller import GitPoller
from bbweb.daemon.lock import DaemonLock, LeaseLost
from bbweb.mastercfg.errors import ConfigErrors
from tests.changes.repos import (
    GitRepo,
    all_changes,
    count_buildrequests,
    poller_cfg,
    saved_state,
)
from tests.daemon.conftest import wait_for


@pytest.fixture
def repo(tmp_path):
    r = GitRepo(tmp_path / "upstream")
    r.commit("initial", {"README": "hello\n"}, when=1700000000)
    return r


def git_master(make_master, repo, **options):
    args = ", ".join(f"{k}={v!r}" for k, v in options.items())
    return make_master(poller_cfg(f"GitPoller({repo.url!r}{', ' if args else ''}{args})"))


def poll(master):
    (poller,) = master.config.change_sources
    return poller.poll(master.db, master.config)


def test_first_poll_records_heads_without_changes(make_master, repo):
    master = git_master(make_master, repo)
    assert poll(master) == []
    assert all_changes(master) == []
    assert saved_state(master, repo.url) == {"lastRev": {"master": repo.head()}}
    assert (master.basedir / "gitpoller-work" / "HEAD").is_file()  # the bare mirror


def test_one_change_per_commit_oldest_first(make_master, repo):
    master = git_master(make_master, repo, project="frob", category="core")
    poll(master)
    first = repo.commit("add the frobnicator\n\nwith a body", {"src/frob.c": "int x;\n"},
                        author="Bob Builder", email="bob@example.org", when=1700000100)
    second = repo.commit("fix it", {"src/frob.c": "int y;\n", "a b.txt": "sp\n"},
                         remove=["README"], when=1700000200)
    ids = poll(master)
    assert len(ids) == 2
    got = all_changes(master)
    assert [c["revision"] for c in got] == [first, second]
    c1, c2 = got
    assert c1["author"] == "Bob Builder <bob@example.org>"
    assert c1["comments"] == "add the frobnicator\n\nwith a body"
    assert c1["files"] == ["src/frob.c"]
    assert c1["when"] == 1700000100
    assert (c1["branch"], c1["repository"], c1["project"], c1["category"], c1["src"]) == (
        "master", repo.url, "frob", "core", "git")
    assert c2["author"] == "Alice Example <alice@example.org>"
    assert sorted(c2["files"]) == ["README", "a b.txt", "src/frob.c"]
    assert c2["when"] == 1700000200
    # the scheduler (branch 'master') acted on the changes in the same transaction
    assert count_buildrequests(master) >= 1
    assert poll(master) == []  # nothing new: nothing again
    assert saved_state(master, repo.url) == {"lastRev": {"master": second}}


def test_restart_neither_skips_nor_repeats(make_master, repo):
    master = git_master(make_master, repo)
    poll(master)
    rev = repo.commit("while the master was down")
    master.reload()  # a new daemon: new poller objects, same database and mirror
    assert len(poll(master)) == 1
    master.reload()
    assert poll(master) == []
    # even with the mirror gone, the saved heads say what was seen
    import shutil
    shutil.rmtree(master.basedir / "gitpoller-work")
    rev2 = repo.commit("after the mirror was lost")
    master.reload()
    assert len(poll(master)) == 1
    assert [c["revision"] for c in all_changes(master)] == [rev, rev2]


def test_usetimestamps_false_uses_the_poll_time(make_master, repo):
    master = git_master(make_master, repo, usetimestamps=False)
    poll(master)
    repo.commit("old date", when=1000000000)
    poll(master)
    (change,) = all_changes(master)
    assert change["when"] > 1700000000


def test_several_branches_and_a_branch_that_appears_later(make_master, repo):
    master = git_master(make_master, repo, branches=["master", "refs/heads/dev", "later"])
    poll(master)
    assert set(saved_state(master, repo.url)["lastRev"]) == {"master"}  # no dev, no later
    repo.checkout("dev", new=True)
    on_dev = repo.commit("dev work", {"dev.txt": "d\n"})
    repo.checkout("master")
    on_master = repo.commit("master work", {"m.txt": "m\n"})
    poll(master)
    got = {(c["branch"], c["revision"]) for c in all_changes(master)}
    # dev is new since the first poll: only its commit that no known head had
    assert got == {("dev", on_dev), ("master", on_master)}
    repo.checkout("later", new=True)  # a branch made from master: nothing new on it
    poll(master)
    assert len(all_changes(master)) == 2
    assert saved_state(master, repo.url)["lastRev"]["later"] == on_master


def test_all_branches_and_a_branch_filter(make_master, repo):
    master = make_master(poller_cfg(
        f"[GitPoller({repo.url!r}, branches=True, name='all'), "
        f"GitPoller({repo.url!r}, name='rel', "
        "branches=lambda ref: ref.startswith('refs/heads/release/'))]"))
    everything, releases = master.config.change_sources
    everything.poll(master.db, master.config)
    releases.poll(master.db, master.config)
    repo.checkout("release/1.0", new=True)
    rel = repo.commit("release fix")
    repo.checkout("master")
    repo.checkout("feature", new=True)
    feat = repo.commit("feature work")
    assert len(everything.poll(master.db, master.config)) == 2
    # 'rel' had no branch to record at its first poll: the new branch's head only
    assert len(releases.poll(master.db, master.config)) == 1
    got = sorted((c["branch"], c["revision"]) for c in all_changes(master))
    assert got == sorted([("release/1.0", rel), ("feature", feat), ("release/1.0", rel)])
    assert set(saved_state(master, "all")["lastRev"]) == {"master", "release/1.0",
                                                          "feature"}
    assert set(saved_state(master, "rel")["lastRev"]) == {"release/1.0"}
    # a deleted branch is forgotten
    repo.checkout("master")
    repo.git("branch", "-D", "feature")
    everything.poll(master.db, master.config)
    assert set(saved_state(master, "all")["lastRev"]) == {"master", "release/1.0"}


def test_history_rewrite_makes_no_changes(make_master, repo):
    master = git_master(make_master, repo)
    repo.commit("will be dropped")
    poll(master)
    repo.git("reset", "--quiet", "--hard", "HEAD~1")
    assert poll(master) == []
    assert saved_state(master, repo.url)["lastRev"]["master"] == repo.head()
    new = repo.commit("rewritten")
    assert len(poll(master)) == 1
    assert all_changes(master)[0]["revision"] == new


def test_two_repositories_share_one_workdir(make_master, tmp_path, repo):
    other = GitRepo(tmp_path / "other")
    other.commit("other initial")
    master = make_master(poller_cfg(
        f"[GitPoller({repo.url!r}, workdir='mirrors'), "
        f"GitPoller({other.url!r}, workdir='mirrors')]"))
    for p in master.config.change_sources:
        p.poll(master.db, master.config)
    a = repo.commit("in repo")
    b = other.commit("in other")
    for p in master.config.change_sources:
        p.poll(master.db, master.config)
    assert {(c["repository"], c["revision"]) for c in all_changes(master)} == {
        (repo.url, a), (other.url, b)}
    assert (master.basedir / "mirrors" / "HEAD").is_file()


def test_an_unreachable_repository_fails_and_stores_nothing(make_master, tmp_path):
    master = make_master(poller_cfg(f"GitPoller({str(tmp_path / 'nowhere')!r})"))
    with pytest.raises(PollError, match="ls-remote"):
        poll(master)
    assert saved_state(master, str(tmp_path / "nowhere")) == {}


def test_a_poll_without_the_daemon_lock_stores_nothing(make_master, repo):
    master = git_master(make_master, repo)
    poll(master)
    repo.commit("new")
    lock = DaemonLock(master.db, "not-the-holder")  # never acquired
    with pytest.raises(LeaseLost):
        master.config.change_sources[0].poll(master.db, master.config, lock=lock)
    assert all_changes(master) == []
    stop = threading.Event()
    stop.set()
    with pytest.raises(PollCancelled):
        master.config.change_sources[0].poll(master.db, master.config, stop=stop)
    assert len(poll(master)) == 1


# -- configuration ---------------------------------------------------------------------------

def test_options_and_description():
    p = GitPoller("git://example.org/r.git", branches=["master", "refs/heads/dev"],
                  pollinterval=30, project="p")
    assert p.name == "git://example.org/r.git" and p.pollInterval == 30
    assert p.branches == ["master", "dev"]
    assert p.describe() == ("GitPoller watching the remote git repository "
                            "git://example.org/r.git, branches: master, dev")
    assert GitPoller("r", branch="x").branches == ["x"]
    assert "all branches" in GitPoller("r", branches=True).describe()
    assert "(poller n)" in GitPoller("r", name="n").describe()
    # a password in the URL never reaches the pages or the log
    secret = GitPoller("https://bob:hunter2@example.org/r.git")
    assert secret.describe() == ("GitPoller watching the remote git repository "
                                 "https://bob:***@example.org/r.git, branches: master")
    assert "hunter2" not in repr(secret)


@pytest.mark.parametrize("call, message", [
    ("GitPoller('')", "repourl must be a non-empty string"),
    ("GitPoller('-oops')", "must not start with '-'"),
    ("GitPoller('r', pollInterval=0)", "pollInterval must be a positive number"),
    ("GitPoller('r', pollInterval='10')", "pollInterval must be a positive number"),
    ("GitPoller('r', pollAtLaunch='yes')", "pollAtLaunch must be True or False"),
    ("GitPoller('r', branches=[])", "branches must be a non-empty list"),
    ("GitPoller('r', branches=[3])", "3 is not a branch name"),
    ("GitPoller('r', branches=['a'], branch='b')", "not both"),
    ("GitPoller('r', fetch_refspec='x')", "fetch_refspec is not supported"),
    ("GitPoller('r', project=5)", "project must be a string"),
    ("GitPoller('r', encoding='no-such-codec')", "unknown encoding"),
])
def test_bad_options_name_the_line(tmp_path, call, message):
    (tmp_path / "master.cfg").write_text(
        "from bbweb.config import *\nc = BuildmasterConfig = {}\n"
        f"c['change_source'] = [\n    {call},\n]\n")
    from bbweb.config import load_master_config

    with pytest.raises(ConfigErrors) as info:
        load_master_config(tmp_path)
    assert message in str(info.value)
    assert "master.cfg:4:" in str(info.value)


def test_change_source_validation(tmp_path):
    from bbweb.config import load_master_config

    (tmp_path / "master.cfg").write_text(
        "from bbweb.config import *\nc = BuildmasterConfig = {}\n"
        "c['change_source'] = [GitPoller('git://a'),\n"
        "                      'PBChangeSource',\n"
        "                      GitPoller('git://a', branches=['dev'])]\n")
    with pytest.raises(ConfigErrors) as info:
        load_master_config(tmp_path)
    text = str(info.value)
    assert ("master.cfg:3: c['change_source'] contains str 'PBChangeSource', expected a "
            "change source") in text
    assert "master.cfg:5: two change sources are named 'git://a' (the first at " in text
    assert "master.cfg:3)" in text
    # a single poller (not in a list) is accepted, and so is a distinct name
    (tmp_path / "master.cfg").write_text(
        "from bbweb.config import *\nc = BuildmasterConfig = {}\n"
        "c['change_source'] = GitPoller('git://a')\n"
        "c['change_source'] = [c['change_source'], GitPoller('git://a', name='a-dev')]\n")
    assert [p.name for p in load_master_config(tmp_path).change_sources] == [
        "git://a", "a-dev"]
    # a class that was not instantiated is an error; another object only a warning
    (tmp_path / "master.cfg").write_text(
        "from bbweb.config import *\nc = BuildmasterConfig = {}\n"
        "class Custom:\n    def describe(self):\n        return 'custom'\n"
        "c['change_source'] = [GitPoller]\n")
    with pytest.raises(ConfigErrors, match="master.cfg:6: c\\['change_source'\\] "
                                           "contains type <class"):
        load_master_config(tmp_path)
    (tmp_path / "master.cfg").write_text(
        "from bbweb.config import *\nc = BuildmasterConfig = {}\n"
        "class Custom:\n    def describe(self):\n        return 'custom'\n"
        "c['change_source'] = [Custom()]\n")
    cfg = load_master_config(tmp_path)
    assert len(cfg.change_sources) == 1
    assert any("contains Custom, which is not a poller" in w for w in cfg.warnings)


def test_pages_show_the_description(make_master, repo):
    master = git_master(make_master, repo)
    app = master.app()
    try:
        client = app.test_client()
        text = f"GitPoller watching the remote git repository {repo.url}, branches: master"
        assert client.get("/json/change_sources").get_json() == {"0": {"description": text}}
        page = client.get("/changes")
        assert page.status_code == 200
        assert text in page.get_data(as_text=True)
    finally:
        app.extensions["bbweb"].db.dispose()


# -- in the daemon -----------------------------------------------------------------------------

def test_daemon_polls_at_launch_and_every_interval(make_master, repo, daemons, caplog):
    caplog.set_level(logging.INFO, logger="bbweb.daemon")
    master = git_master(make_master, repo, pollInterval=0.2, pollAtLaunch=True)
    d = daemons(master.basedir, holder="d")
    wait_for(lambda: saved_state(master, repo.url), what="the first poll")
    rev = repo.commit("pushed while the daemon runs")
    wait_for(lambda: all_changes(master), what="the poller to find the commit")
    assert [c["revision"] for c in all_changes(master)] == [rev]
    wait_for(lambda: count_buildrequests(master), what="a build request")
    assert d.stop() == 0
    # restart: the commit made while stopped comes once, nothing is repeated
    rev2 = repo.commit("pushed while the daemon was stopped")
    daemons(master.basedir, holder="d2")
    wait_for(lambda: len(all_changes(master)) == 2, what="the second change")
    assert [c["revision"] for c in all_changes(master)] == [rev, rev2]
    assert f"polling {repo.url!r} every 0.2s" in caplog.text


def test_a_failing_poller_does_not_stop_the_others(make_master, tmp_path, repo, daemons,
                                                   caplog):
    missing = str(tmp_path / "missing")
    master = make_master(poller_cfg(
        f"[GitPoller({missing!r}, pollInterval=0.1, pollAtLaunch=True), "
        f"GitPoller({repo.url!r}, pollInterval=0.1, pollAtLaunch=True)]"))
    daemons(master.basedir, holder="d")
    wait_for(lambda: saved_state(master, repo.url), what="the good poller's first poll")
    rev = repo.commit("new")
    wait_for(lambda: all_changes(master), what="the good poller to find the commit")
    assert all_changes(master)[0]["revision"] == rev
    wait_for(lambda: f"poller {missing!r} failed" in caplog.text,
             what="the failure to be logged with the poller's name")


def test_only_the_daemon_holding_the_lock_polls(make_master, repo, daemons):
    from tests.daemon.conftest import lock_holder

    def poller_threads():
        return [t for t in threading.enumerate() if t.name.startswith("bbweb-poller:")]

    master = git_master(make_master, repo, pollInterval=0.1, pollAtLaunch=True)
    first = daemons(master.basedir, holder="first")
    wait_for(lambda: lock_holder(master) == "first", what="the first daemon to lead")
    daemons(master.basedir, holder="standby")
    wait_for(lambda: saved_state(master, repo.url), what="the first poll")
    assert len(poller_threads()) == 1  # the stand-by does not poll
    assert first.stop() == 0
    wait_for(lambda: lock_holder(master) == "standby", what="the take-over")
    rev = repo.commit("after the take-over")
    wait_for(lambda: all_changes(master), what="the new leader to poll")
    assert [c["revision"] for c in all_changes(master)] == [rev]
    assert len(poller_threads()) == 1
