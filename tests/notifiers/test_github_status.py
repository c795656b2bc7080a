"""GitHubStatus run by the master daemon against a local stand-in for GitHub's statuses
endpoint that checks each request against the documented API: the states of a build,
an outage (5xx) retried, a refusal (422) not retried, and a used-up rate limit waited out
until its reset without asking again in between."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest

from bbweb.status.builder import EXCEPTION, FAILURE, SUCCESS, WARNINGS
from tests.daemon.conftest import saved_cursor
from tests.notifiers.conftest import MAIL_CFG, Clock, attempts, build
from tests.support.github_api import GitHubApi
from tests.support.polling import wait_for

TOKEN = "ghp_testtoken0123456789"
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def api() -> Iterator[GitHubApi]:
    server = GitHubApi(TOKEN).start()
    yield server
    server.stop()


def github_cfg(base_url: str, **extra: str) -> str:
    args = "".join(f", {k}={v}" for k, v in extra.items())
    return MAIL_CFG + textwrap.dedent(f"""
        from bbweb.status.github import GitHubStatus
        c['status'].append(GitHubStatus(token={TOKEN!r}, repoOwner='octo',
                                        repoName=Interpolate('%(prop:repo:-hello)s'),
                                        baseURL={base_url!r}{args}))
    """)


def started(master, daemons):  # type: ignore[no-untyped-def]
    d = daemons(master.basedir, holder="d")
    wait_for(lambda: saved_cursor(master, "notifier.github") is not None,
             what="the notifier to take its place in the event stream")
    return d


def test_states_of_builds(make_master, daemons, api):
    master = make_master(github_cfg(api.url))
    d = started(master, daemons)
    clock = Clock()
    results = (SUCCESS, WARNINGS, FAILURE, EXCEPTION)
    for result in results:
        build(master, "runtests", result, clock, revision=SHA)
    seen = wait_for(lambda: api.statuses() if len(api.statuses()) == 8 else None,
                    what="8 statuses")
    assert api.invalid == []
    assert [s.body["state"] for s in seen] == ["pending", "success", "pending", "failure",
                                               "pending", "failure", "pending", "error"]
    first = seen[0]
    assert first.path == f"/repos/octo/hello/statuses/{SHA}"
    assert first.headers["authorization"] == f"token {TOKEN}"
    assert first.headers["accept"] == "application/vnd.github+json"
    assert first.headers["user-agent"].startswith("bbweb/")
    assert first.body == {"state": "pending", "description": "Build started.",
                          "context": "bbweb/runtests",
                          "target_url": "http://bb.example.org/builders/runtests/builds/0"}
    assert seen[1].body["description"] == "Build done."
    assert seen[7].body["target_url"].endswith("/builders/runtests/builds/3")
    rows = attempts(master, "github")
    assert [r.outcome for r in rows] == ["sent"] * 8
    assert rows[1].what == "runtests #0 (success)" and rows[1].answer == "201 Created"
    assert all(TOKEN not in (r.answer or "") for r in rows)
    assert d.stop() == 0


def test_no_revision_is_skipped_and_enterprise_context(make_master, daemons, api):
    master = make_master(github_cfg(api.url + "/api/v3",
                                    context="Interpolate('ci/%(prop:buildername)s')"))
    d = started(master, daemons)
    clock = Clock()
    build(master, "docs", SUCCESS, clock)  # no revision: nothing to report on
    build(master, "docs", SUCCESS, clock, revision=SHA, properties={"repo": "world"})
    seen = wait_for(lambda: api.statuses() if len(api.statuses()) == 2 else None,
                    what="2 statuses")
    assert [s.path for s in seen] == [f"/api/v3/repos/octo/world/statuses/{SHA}"] * 2
    assert seen[0].body["context"] == "ci/docs"
    skipped = [r for r in attempts(master, "github") if r.outcome == "skipped"]
    assert [r.answer for r in skipped] == ["No revision found."] * 2
    assert d.stop() == 0


def test_outage_refusal_and_rate_limit(make_master, daemons, api):
    master = make_master(github_cfg(api.url))
    d = started(master, daemons)
    clock = Clock()
    api.script(("5xx", 0), ("422", 0))
    build(master, "runtests", SUCCESS, clock, revision=SHA)
    # pending: 502, then retried: 422, refused for good; then success is created
    wait_for(lambda: [r.outcome for r in attempts(master, "github")] ==
             ["failed", "rejected", "sent"], what="retry after 5xx, then a refusal")
    rejected = attempts(master, "github")[1]
    assert rejected.answer.startswith("POST http://127.0.0.1:")
    assert "422 Unprocessable Entity" in rejected.answer and "No commit found" in rejected.answer

    api.script(("ratelimit", 2.0))
    build(master, "runtests", FAILURE, clock, revision=SHA)
    wait_for(lambda: len(api.statuses()) >= 2, timeout=30, what="the status after the reset")
    limited = [s for s in api.seen if s.answer == 403]
    assert len(limited) == 1
    after = [s for s in api.seen if s.at > limited[0].at]
    # asked again only once the limit was reset, not in between (the daemon's backoff
    # alone would have retried within 0.2 s)
    assert after and after[0].at >= limited[0].reset - 1.0
    assert after[0].body["state"] == "pending"
    wait_for(lambda: len(api.statuses()) == 3, what="the failure status")
    assert api.statuses()[-1].body["state"] == "failure"
    assert api.invalid == []
    assert d.stop() == 0
