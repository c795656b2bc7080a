"""StatusPush, HttpStatusPush and GitHubStatus arguments: defaults, and bad values reported
by checkconfig with the file and line of master.cfg (also from plugins.toml)."""

from __future__ import annotations

import re
import textwrap

import pytest

from bbweb.cli import main
from bbweb.mastercfg.errors import ConfigErrors
from bbweb.process.properties import Interpolate
from bbweb.status.github import GitHubStatus
from bbweb.status.status_push import HttpStatusPush, StatusPush
from tests.notifiers.conftest import MAIL_CFG


def test_defaults():
    p = HttpStatusPush("http://example.org/push")
    assert (p.chunkSize, p.maxHttpRequestSize, p.extra_post_params) == (200, 2 ** 20, {})
    assert (p.filter, p.bufferDelay, p.retryDelay, p.blackList) == (True, 1.0, 5.0,
                                                                     frozenset())
    assert (p.debug, p.format) == (False, "form")
    assert p.name == "httpstatuspush" and p.consumer_name == "notifier.httpstatuspush"
    assert p.initial_position == "latest"
    # 0.8's queue sizes are accepted: the event outbox holds every packet
    HttpStatusPush("http://example.org/", maxMemoryItems=10, maxDiskItems=0)
    s = StatusPush(serverPushCb=lambda self: None)
    assert s.name == "statuspush" and s.chunkSize == 200
    g = GitHubStatus("t0ken", "owner", Interpolate("%(prop:repo)s"))
    assert g.baseURL == "https://api.github.com" and g.name == "github"
    assert g.startDescription == "Build started." and g.endDescription == "Build done."
    assert isinstance(g.sha, Interpolate) and g.sha.fmtstring == "%(src::revision)s"
    assert "t0ken" not in repr(g)
    assert "secret" not in repr(HttpStatusPush("http://u:secret@example.org/", secret="k"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"serverUrl": ""}, "HttpStatusPush requires a serverUrl"),
    ({"serverUrl": None}, "HttpStatusPush requires a serverUrl"),
    ({"serverUrl": "ftp://example.org/"}, "serverUrl 'ftp://example.org/' is not an http://"),
    ({"chunkSize": 0}, "chunkSize must be a whole number of at least 1"),
    ({"maxHttpRequestSize": "big"}, "maxHttpRequestSize must be a whole number"),
    ({"maxDiskItems": -1}, "maxDiskItems must be a whole number of at least 0"),
    ({"extra_post_params": {"packets": "x"}}, "extra_post_params cannot set 'packets'"),
    ({"extra_post_params": {"a": 1}}, "extra_post_params must be a dictionary of strings"),
    ({"extra_post_params": {"a": "b"}, "format": "json"}, "they need format='form'"),
    ({"format": "xml"}, "format must be 'form'"),
    ({"secret": ""}, "secret must be a non-empty string"),
    ({"bufferDelay": -1}, "bufferDelay must be a non-negative number of seconds"),
    ({"retryDelay": 0}, "retryDelay must be a positive number of seconds"),
    ({"filter": "yes"}, "filter must be True or False"),
    ({"blackList": "buildStarted"}, "blackList must be a list of event names"),
    ({"blackList": ["buildStarted", "bogus"]}, "blackList has unknown event name(s) bogus"),
    ({"serverPushCb": print}, "serverPushCb is StatusPush's argument"),
    ({"colour": "blue"}, "unknown argument(s) colour"),
])
def test_http_status_push_argument_errors(kwargs, message):
    kwargs = {"serverUrl": "http://example.org/push", **kwargs}
    with pytest.raises(ConfigErrors) as info:
        HttpStatusPush(**kwargs)
    assert message in str(info.value)


def test_status_push_needs_a_callback():
    with pytest.raises(ConfigErrors, match="Please pass serverPushCb parameter"):
        StatusPush()
    with pytest.raises(ConfigErrors, match="cannot be imported"):
        StatusPush(serverPushCb="nomodule_xyz:push")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"token": ""}, "token (a GitHub API token) is required"),
    ({"token": "abc\n"}, "token must not contain spaces or line breaks"),
    ({"repoOwner": None}, "repoOwner is required"),
    ({"repoName": 42}, "repoName must be a string or a renderable"),
    ({"baseURL": "github.example.com"}, "baseURL 'github.example.com' is not an http://"),
    ({"builders": "runtests"}, "builders must be a list of builder names"),
    ({"timeout": 0}, "timeout must be a positive number of seconds"),
    ({"colour": "blue"}, "unknown argument(s) colour"),
])
def test_github_argument_errors(kwargs, message):
    kwargs = {"token": "t", "repoOwner": "o", "repoName": "r", **kwargs}
    with pytest.raises(ConfigErrors) as info:
        GitHubStatus(**kwargs)
    assert message in str(info.value)
    assert "abc" not in str(info.value) or "token" not in kwargs


def test_checkconfig_names_file_and_line(tmp_path, capsys):
    cfg = MAIL_CFG.replace("DB_URL", repr("sqlite:///" + str(tmp_path / "s.sqlite")))
    cfg += textwrap.dedent("""
        from bbweb.status.status_push import HttpStatusPush
        from bbweb.status.github import GitHubStatus
        c['status'].append(HttpStatusPush(serverUrl='http://example.org/', chunkSize=0))
        c['status'].append(GitHubStatus(token='t', repoOwner='o', repoName='r',
                                        baseURL='nowhere'))
    """)
    (tmp_path / "master.cfg").write_text(cfg)
    assert main(["checkconfig", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate(cfg.splitlines(), 1) if "HttpStatusPush(" in text
                and "append" in text)
    assert re.search(rf"master\.cfg:{line}: HttpStatusPush: chunkSize must be", err), err


def test_good_configurations_pass_checkconfig(tmp_path, capsys):
    cfg = MAIL_CFG.replace("DB_URL", repr("sqlite:///" + str(tmp_path / "s.sqlite")))
    cfg += textwrap.dedent("""
        from bbweb.status.status_push import HttpStatusPush
        from bbweb.status.github import GitHubStatus
        c['status'].append(HttpStatusPush(serverUrl='http://example.org/',
                                          blackList=['stepStarted'], secret='s3cret'))
        c['status'].append(GitHubStatus(token='t', repoOwner='o',
                                        repoName=Interpolate('%(prop:repo)s')))
    """)
    (tmp_path / "master.cfg").write_text(cfg)
    assert main(["checkconfig", str(tmp_path)]) == 0, capsys.readouterr().err


def test_plugins_toml_enables_them(tmp_path, capsys):
    cfg = MAIL_CFG.replace("DB_URL", repr("sqlite:///" + str(tmp_path / "s.sqlite")))
    (tmp_path / "master.cfg").write_text(cfg)
    (tmp_path / "plugins.toml").write_text(
        '[notifiers]\nhttpstatuspush = { serverUrl = "http://example.org/", chunkSize = 0 }\n')
    assert main(["checkconfig", str(tmp_path)]) == 1
    assert ("notifiers.httpstatuspush: HttpStatusPush: chunkSize must be"
            in capsys.readouterr().err)
    (tmp_path / "plugins.toml").write_text(
        '[notifiers]\nhttpstatuspush = { serverUrl = "http://example.org/" }\n'
        'github = { token = "t", repoOwner = "o", repoName = "r" }\n'
        'statuspush = { serverPushCb = "json:dumps" }\n')
    assert main(["checkconfig", str(tmp_path)]) == 0, capsys.readouterr().err
