"""SVNPoller against real Subversion repositories (svnadmin create, file:// URLs)."""

from __future__ import annotations

import time

import pytest

from bbweb.changes import PollError
from bbweb.changes.svnpoller import (
    SVNPoller,
    split_file_alwaystrunk,
    split_file_branches,
    split_file_projects_branches,
)
from bbweb.mastercfg.errors import ConfigErrors
from tests.changes.repos import SvnRepo, all_changes, count_buildrequests, poller_cfg, saved_state
from tests.daemon.conftest import wait_for


@pytest.fixture
def repo(tmp_path):
    r = SvnRepo(tmp_path / "svn")
    r.commit("first files", {"trunk/README": "hello\n", "tags/.keep": ""})
    return r


def svn_master(make_master, url, split="split_file_branches", branch=None, **options):
    args = "".join(f", {k}={v!r}" for k, v in options.items())
    return make_master(poller_cfg(f"SVNPoller({url!r}, split_file={split}{args})",
                                  scheduler_branch=branch))


def poll(master):
    (poller,) = master.config.change_sources
    return poller.poll(master.db, master.config)


def test_split_helpers():
    assert split_file_alwaystrunk("a/b.c") == (None, "a/b.c")
    assert split_file_branches("trunk/src/a.c") == (None, "src/a.c")
    assert split_file_branches("branches/1.0/src/a.c") == ("branches/1.0", "src/a.c")
    assert split_file_branches("branches/1.0") is None
    assert split_file_branches("tags/v1/a.c") is None
    assert split_file_projects_branches("proj/branches/b/x") == {
        "project": "proj", "branch": "branches/b", "path": "x"}
    assert split_file_projects_branches("README") is None


def test_first_poll_records_the_youngest_revision(make_master, repo):
    master = svn_master(make_master, repo.url)
    assert poll(master) == []
    assert all_changes(master) == []
    assert saved_state(master, repo.url) == {"last_rev": repo.youngest()}


def test_one_change_per_revision_and_branch(make_master, repo):
    master = svn_master(make_master, repo.url, project="frob", category="core",
                        revlinktmpl="http://svn.example.org/r%s")
    poll(master)
    before = time.time() - 5
    r1 = repo.commit("trunk work", {"trunk/src/a.c": "a\n", "trunk/README": "more\n"},
                     author="bob")
    r2 = repo.copy("trunk", "branches/1.0", "make a branch")
    r3 = repo.commit("both at once", {"trunk/b.c": "b\n", "branches/1.0/c.c": "c\n",
                                      "tags/x": "ignored\n"})
    r4 = repo.commit("only a tag", {"tags/y": "ignored\n"})
    ids = poll(master)
    got = all_changes(master)
    assert len(ids) == len(got) == 4
    c1, c2, *c3 = got
    assert c1["revision"] == str(r1)
    assert c1["author"] == "bob" and c1["comments"] == "trunk work"
    assert sorted(c1["files"]) == ["README", "src/", "src/a.c"]
    assert c1["branch"] is None
    assert (c1["repository"], c1["project"], c1["category"], c1["src"]) == (
        repo.url, "frob", "core", "svn")
    assert c1["revlink"] == f"http://svn.example.org/r{r1}"
    assert before < c1["when"] < time.time() + 5
    # r2 made the branch: a change on it, with no files
    assert (c2["revision"], c2["branch"], c2["files"]) == (str(r2), "branches/1.0", [])
    c3_trunk, c3_branch = sorted(c3, key=lambda c: c["branch"] or "")
    assert (c3_trunk["revision"], c3_trunk["branch"], c3_trunk["files"]) == (
        str(r3), None, ["b.c"])
    assert (c3_branch["revision"], c3_branch["branch"], c3_branch["files"]) == (
        str(r3), "branches/1.0", ["c.c"])
    assert saved_state(master, repo.url) == {"last_rev": r4}
    assert count_buildrequests(master) >= 1  # the scheduler of the default branch
    assert poll(master) == []


def test_svnurl_below_the_root_and_histmax_skips_nothing(make_master, repo):
    url = repo.url + "/trunk"
    master = svn_master(make_master, url, split="None", histmax=2)
    poll(master)
    revs = [repo.commit(f"change {i}", {f"trunk/f{i}.c": f"{i}\n"}) for i in range(5)]
    repo.commit("outside trunk", {"tags/z": "z\n"})
    assert len(poll(master)) == 5  # three `svn log` calls of at most 2 entries
    got = all_changes(master)
    assert [c["revision"] for c in got] == [str(r) for r in revs]
    assert [c["files"] for c in got] == [[f"f{i}.c"] for i in range(5)]
    assert all(c["branch"] is None and c["repository"] == url for c in got)
    assert saved_state(master, url) == {"last_rev": repo.youngest()}


def test_restart_neither_skips_nor_repeats(make_master, repo):
    master = svn_master(make_master, repo.url)
    poll(master)
    r = repo.commit("while down", {"trunk/x": "x\n"})
    master.reload()
    assert len(poll(master)) == 1
    master.reload()
    assert poll(master) == []
    assert [c["revision"] for c in all_changes(master)] == [str(r)]


def test_credentials_and_extra_args_reach_svn(make_master, repo):
    # file:// ignores credentials; what matters is that svn accepts how they are passed
    # (the password on standard input, never on the command line)
    master = svn_master(make_master, repo.url, svnuser="alice", svnpasswd="s3cret",
                        extra_args=["--trust-server-cert-failures=unknown-ca"])
    poll(master)
    repo.commit("x", {"trunk/x": "x\n"})
    assert len(poll(master)) == 1


def test_a_split_file_dict_and_a_broken_split_file(make_master, repo):
    master = make_master(poller_cfg(
        f"SVNPoller({repo.url!r}, split_file=lambda p: {{'path': p, 'branch': 'b', "
        "'project': 'pp'} if p.startswith('trunk/') else None)", scheduler_branch="b"))
    poll(master)
    repo.commit("x", {"trunk/x": "x\n"})
    poll(master)
    (change,) = all_changes(master)
    assert (change["branch"], change["project"], change["files"]) == ("b", "pp", ["trunk/x"])
    broken = make_master(poller_cfg(f"SVNPoller({repo.url!r}, split_file=lambda p: 1 / 0)"),
                         name="broken")
    poll(broken)
    repo.commit("y", {"trunk/y": "y\n"})
    with pytest.raises(PollError, match="split_file.*ZeroDivisionError"):
        poll(broken)
    assert all_changes(broken) == [change]  # (same database) nothing new stored


def test_a_missing_repository_fails(make_master, tmp_path):
    url = (tmp_path / "nothing").as_uri()
    master = svn_master(make_master, url)
    with pytest.raises(PollError, match="svn info failed"):
        poll(master)
    assert saved_state(master, url) == {}


def test_options_and_description():
    p = SVNPoller("svn://example.org/repo/", pollinterval=60)
    assert p.svnurl == p.name == "svn://example.org/repo" and p.pollInterval == 60
    assert p.describe() == "SVNPoller: watching svn://example.org/repo"
    assert p.split_file is split_file_alwaystrunk


@pytest.mark.parametrize("call, message", [
    ("SVNPoller(None)", "svnurl must be a non-empty string"),
    ("SVNPoller('svn://r', split_file='trunk')", "split_file must be a function"),
    ("SVNPoller('svn://r', histmax=0)", "histmax must be a positive integer"),
    ("SVNPoller('svn://r', svnpasswd=1234)", "svnpasswd must be a string"),
    ("SVNPoller('svn://r', revlinktmpl='http://x/')", "revlinktmpl needs a '%s'"),
    ("SVNPoller('svn://r', extra_args='--x')", "extra_args must be a list"),
    ("SVNPoller('svn://r', pollInterval=-1)", "pollInterval must be a positive number"),
])
def test_bad_options_name_the_line(tmp_path, call, message):
    from bbweb.config import load_master_config

    (tmp_path / "master.cfg").write_text(
        "from bbweb.config import *\nc = BuildmasterConfig = {}\n"
        f"c['change_source'] = {call}\n")
    with pytest.raises(ConfigErrors) as info:
        load_master_config(tmp_path)
    assert message in str(info.value)
    assert "master.cfg:3:" in str(info.value)


def test_daemon_polls_svn(make_master, repo, daemons):
    master = svn_master(make_master, repo.url, pollInterval=0.2, pollAtLaunch=True)
    daemons(master.basedir, holder="d")
    wait_for(lambda: saved_state(master, repo.url), what="the first poll")
    r = repo.commit("pushed", {"branches/2.0/x.c": "x\n"})
    wait_for(lambda: all_changes(master), what="the poller to find the revision")
    (change,) = all_changes(master)
    assert (change["revision"], change["branch"], change["files"]) == (
        str(r), "branches/2.0", ["x.c"])
