"""``/rss`` and ``/atom``, read through a real feed parser, on SQLite and
PostgreSQL, with history built through the engine."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import feedparser
import pytest
import sqlalchemy as sa

from bbweb.db.schema import steps
from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.changes import ChangeInput, add_change
from bbweb.engine.logs import append_chunks, create_log
from bbweb.status import logstream
from bbweb.web import feeds
from tests.web.test_json_api import claim, force

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Feed <Project> & Co'
c['titleURL'] = 'http://example.org/project'
c['buildbotURL'] = 'http://bb.example.org/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('slave1', 'pw')]
two = BuildFactory([ShellCommand(command=['make'], name='compile'),
                    ShellCommand(command=['make', 'test'], name='test')])
c['builders'] = [
    BuilderConfig(name='runtests', slavenames=['slave1'], factory=two, category='core'),
    BuilderConfig(name='docs', slavenames=['slave1'], factory=two, category='doc'),
    BuilderConfig(name='idle', slavenames=['slave1'], factory=two),
]
c['schedulers'] = [
    SingleBranchScheduler(name='all', branch=None, builderNames=['runtests']),
    ForceScheduler(name='force', builderNames=['runtests', 'docs', 'idle']),
]
"""

HOSTILE_AUTHOR = '<script>alert("a")</script> & <evil@example.org>'
HOSTILE_COMMENT = "]]></description><x>&amp; <b>bold</b>"
T0 = 1_700_000_000.0
LOG_LINES = ([f"line {i:02d}" for i in range(40)]
             + ["</pre><script>boom()</script> & \x01\x1b[31mred"])


def play(master, buildid: int, t: float, outcome: dict[str, Any]) -> None:
    """Run every step: ``outcome[name]`` is an rc or ``"error"`` (EXCEPTION); the ``test``
    step of a failing build writes :data:`LOG_LINES`."""
    while True:
        with master.db.write() as conn:
            spec = eb.next_step(conn, master.config, buildid, now=t)
        if spec is None:
            return
        rc = outcome.get(spec["name"], 0)
        text = "\n".join(LOG_LINES) + "\n" if rc not in (0, "error") else "ok\n"
        with master.db.write() as conn:
            eb.append_step_log(conn, master.config, spec["id"], "stdio", [("o", text)])
            if rc == "error":
                eb.finish_step(conn, master.config, spec["id"], None, interrupted="error",
                               error="boom", now=t + 1)
            else:
                eb.finish_step(conn, master.config, spec["id"], rc, now=t + 1,
                               properties={"project": "frob" if rc else "other"})
        t += 2


@pytest.fixture
def feed_master(make_master):
    master = make_master(CFG)
    cfg = master.config
    with master.db.write() as conn:
        sync_builders(conn, cfg)
        es.slave_connected(conn, "slave1", {"host": "h"}, now=T0)
        add_change(conn, cfg, ChangeInput(
            author=HOSTILE_AUTHOR, comments=HOSTILE_COMMENT, files=["a.c"],
            revision="abc123", when=T0, branch=None, repository="git://r.git",
            project="frob"), now=T0 + 1)
    # runtests #0 FAILURE (from the hostile change), docs #0 SUCCESS, runtests #1
    # EXCEPTION, docs #1 FAILURE, then runtests #2 running
    r0 = claim(master, "slave1", T0 + 10)
    play(master, r0.buildid, T0 + 11, {"test": 1})
    force(master, "docs", reason="docs <please>", owner="bob")
    d0 = claim(master, "slave1", T0 + 20)
    play(master, d0.buildid, T0 + 21, {})
    force(master, "runtests", reason="again", owner="bob")
    r1 = claim(master, "slave1", T0 + 30)
    play(master, r1.buildid, T0 + 31, {"compile": "error"})
    force(master, "docs", reason="docs again", owner="bob")
    d1 = claim(master, "slave1", T0 + 40)
    play(master, d1.buildid, T0 + 41, {"compile": 2})
    force(master, "runtests", reason="running", owner="bob")
    r2 = claim(master, "slave1", T0 + 50)
    with master.db.write() as conn:
        eb.next_step(conn, cfg, r2.buildid, now=T0 + 51)
    return master


@pytest.fixture
def feed_client(feed_master):
    application = feed_master.app()
    yield application.test_client()
    application.extensions["bbweb"].db.dispose()


def fetch(client, url: str) -> tuple[Any, Any]:
    resp = client.get(url)
    assert resp.status_code == 200, (url, resp.data[:300])
    ET.fromstring(resp.data)  # well-formed XML
    parsed = feedparser.parse(resp.data)
    assert not parsed.bozo, parsed.bozo_exception
    return resp, parsed


def titles(parsed) -> list[str]:
    return [e.title for e in parsed.entries]


@pytest.mark.parametrize("kind,version,ctype", [
    ("rss", "rss20", "application/rss+xml; charset=utf-8"),
    ("atom", "atom10", "application/atom+xml; charset=utf-8"),
])
def test_feed_lists_finished_builds_newest_first(feed_client, kind, version, ctype):
    resp, parsed = fetch(feed_client, "/" + kind)
    assert resp.content_type == ctype
    assert parsed.version == version
    assert parsed.feed.title == "Build status of Feed <Project> & Co"
    assert titles(parsed) == ['Builder "docs": failure', 'Builder "runtests": exception',
                              'Builder "docs": success', 'Builder "runtests": failure']
    links = [e.link for e in parsed.entries]
    assert links == ["http://bb.example.org/builders/docs/builds/1",
                     "http://bb.example.org/builders/runtests/builds/1",
                     "http://bb.example.org/builders/docs/builds/0",
                     "http://bb.example.org/builders/runtests/builds/0"]
    # any sub-path is the same feed
    assert titles(fetch(feed_client, f"/{kind}/anything/here")[1]) == titles(parsed)


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_feed_keeps_the_newest_finished_builds_of_all_builders(feed_client, kind,
                                                               monkeypatch):
    """The feed's length cuts the merged list, newest finish first, and also bounds what
    each builder offers: a builder's older builds never push out another's newer ones."""
    monkeypatch.setattr(feeds, "FEED_SIZE", 3)
    assert titles(fetch(feed_client, "/" + kind)[1]) == [
        'Builder "docs": failure', 'Builder "runtests": exception', 'Builder "docs": success']
    monkeypatch.setattr(feeds, "FEED_SIZE", 1)
    assert titles(fetch(feed_client, "/" + kind)[1]) == ['Builder "docs": failure']
    assert titles(fetch(feed_client, f"/{kind}?builder=runtests")[1]) == [
        'Builder "runtests": exception']


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_ids_unique_and_stable(feed_client, kind):
    first = [e.id for e in fetch(feed_client, "/" + kind)[1].entries]
    again = [e.id for e in fetch(feed_client, "/" + kind)[1].entries]
    assert first == again and len(set(first)) == len(first) == 4


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_filters(feed_client, kind):
    def got(query: str) -> list[str]:
        return titles(fetch(feed_client, f"/{kind}?{query}")[1])

    assert got("builder=runtests") == ['Builder "runtests": exception',
                                       'Builder "runtests": failure']
    assert got("show=docs&builder=runtests") == titles(fetch(feed_client, "/" + kind)[1])
    assert got("category=doc") == ['Builder "docs": failure', 'Builder "docs": success']
    assert got("category=doc&category=core") == got("")
    assert got("builder=idle") == []
    assert got("builder=nosuch") == []
    # failures only: FAILURE, not EXCEPTION
    assert got("failures_only=true") == ['Builder "docs": failure',
                                         'Builder "runtests": failure']
    assert got("failures_only=1&builder=docs") == ['Builder "docs": failure']
    assert got("failures_only=off") == got("")
    # the last step to finish sets ``project``: "frob" only where that step failed
    assert got("project=frob") == ['Builder "runtests": failure']
    # runtests #1 stopped at its exception before any step set it
    assert got("project=frob&project=other") == [
        'Builder "docs": failure', 'Builder "docs": success', 'Builder "runtests": failure']


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_entry_text_escaped_with_log_tail(feed_client, kind):
    resp, parsed = fetch(feed_client, "/" + kind)
    assert b"<script>" not in resp.data
    failed = parsed.entries[3]  # runtests #0
    text = failed.description if kind == "rss" else failed.content[0].value
    # the entry body is HTML; user text inside it is escaped once more
    assert "&lt;script&gt;alert" in text and "&lt;evil@example.org&gt;" in text
    assert "Result: failure" in text
    assert "Reason: The SingleBranchScheduler scheduler named 'all'" in text
    assert "Failed step(s): test" in text
    assert 'Last lines of build log "stdio":' in text
    assert "line 10" not in text and "line 11" in text and "line 39" in text
    assert "&lt;/pre&gt;&lt;script&gt;boom()&lt;/script&gt; &amp;" in text
    assert "\x01" not in text
    assert "Repository: git://r.git" in text and "Revision: abc123" in text
    docs = parsed.entries[2].description if kind == "rss" else \
        parsed.entries[2].content[0].value
    assert "Reason: A build was forced by 'bob': docs &lt;please&gt;" in docs
    assert "Last lines" not in docs


def test_feeds_mounted_only_when_provided(make_master, feed_master):
    cfg = CFG + "c['status'] = [WebStatus(http_port=8010, provide_feeds=['atom'])]\n"
    master = make_master(cfg, name="atom_only")
    application = master.app()
    try:
        client = application.test_client()
        assert "feeds.atom" in application.view_functions
        assert "feeds.rss" not in application.view_functions
        assert client.get("/rss").status_code == 404
        assert client.get("/atom").status_code == 200
        html = client.get("/").get_data(as_text=True)
        assert "application/atom+xml" in html and "application/rss+xml" not in html
    finally:
        application.extensions["bbweb"].db.dispose()


def test_log_tail_reads_only_the_end(feed_master):
    with feed_master.db.write() as conn:
        stepid = conn.execute(sa.select(steps.c.id).limit(1)).scalar_one()
        logid = create_log(conn, stepid, "big")
        append_chunks(conn, logid, [("o", f"{i}\n") for i in range(500)])
    with feed_master.db.read() as conn:
        tail = logstream.log_tail(conn, logid, 5)
    assert tail == "495\n496\n497\n498\n499"
    assert feeds.xml_text("a\x00b\x1bc\ufffed") == "abcd"
