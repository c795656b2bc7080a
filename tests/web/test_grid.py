"""``/grid`` and ``/tgrid`` over history built through the engine, on SQLite
and PostgreSQL: which build lands in which cell, the headers, the filters, escaping, bad
arguments, and a statement count that does not grow with history or builders."""

from __future__ import annotations

import html as htmllib
import re
from typing import Any

import pytest

from bbweb.db.schema import builds as builds_table
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.buildsets import create_buildset, create_sourcestamp
from bbweb.engine.force import force_build
from tests.support.history import claim, run
from tests.support.querycount import counting

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Frob <&> Co'
c['titleURL'] = 'http://example.org/frob'
c['buildbotURL'] = 'http://bb.example.org/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('s1', 'pw'), BuildSlave('s2', 'pw'), BuildSlave('s3', 'pw'),
               BuildSlave('s4', 'pw'), BuildSlave('s5', 'pw')]
two = BuildFactory([ShellCommand(command=['make'], name='compile'),
                    ShellCommand(command=['make', 'test'], name='test')])
c['builders'] = [
    BuilderConfig(name='linux2', slavenames=['s1'], factory=two, category='core'),
    BuilderConfig(name='linux10', slavenames=['s2'], factory=two, category='core'),
    BuilderConfig(name='docs', slavenames=['s3'], factory=two, category='doc'),
    BuilderConfig(name='win', slavenames=['s4'], factory=two, category='core'),
    BuilderConfig(name='<i>"evil"</i>', slavenames=['s5'], factory=two, category='<x>'),
]
c['schedulers'] = [ForceScheduler(name='force', builderNames=[
    'linux2', 'linux10', 'docs', 'win', '<i>"evil"</i>'])]
c['status'] = [WebStatus(http_port=8010, revlink='https://code.example.org/r/%s')]
"""

T0 = 1_700_000_000.0
REPO = "git://example.org/frob.git"


# -- history ------------------------------------------------------------------------------------

def force(master, names: list[str], **kw: Any) -> None:
    with master.db.write() as conn:
        force_build(conn, master.config, names, **kw)


def try_job(master, names: list[str], **stamp: Any) -> None:
    """A buildset whose one source stamp carries a patch (what a try scheduler makes)."""
    with master.db.write() as conn:
        ssid = create_sourcestamp(conn, patch={"level": 1, "body": b"--- a\n+++ b\n"},
                                  **stamp)
        create_buildset(conn, master.config, sourcestampids=[ssid], builder_names=names,
                        reason="try")


def set_text(master, buildid: int, text: str) -> None:
    with master.db.write() as conn:
        conn.execute(builds_table.update().where(builds_table.c.id == buildid)
                     .values(text=text))


def build_history(master) -> dict[str, Any]:
    """Stamps in start order (their revision strings sort the other way round):

    * A ``zz111`` (T0+10): linux2 #0 OK, linux10 #0 failed test, docs #0 OK;
      linux2 #2 (T0+30) builds it again and fails;
    * B ``aa222`` (T0+20): linux2 #1 OK, linux10 #1 with no text;
    * C branch ``feature``, no revision (T0+40): linux2 #3, still running;
    * D no revision, got_revision ``abc123def4567890ff`` (T0+50): docs #1 OK;
    * E try job ``frob``/``lib`` r3 on ``release`` with a patch (T0+60): linux10 #2 OK.

    Pending: win ×2 (its slave never connected), linux10 ×1.
    """
    cfg = master.config
    with master.db.write() as conn:
        sync_builders(conn, cfg)
        for s in ("s1", "s2", "s3"):
            es.slave_connected(conn, s, {"host": s}, now=T0)
    force(master, ["linux2", "linux10", "docs"], revision="zz111", repository=REPO)
    a_l2 = claim(master, "s1", T0 + 10)
    run(master, a_l2.buildid, {}, T0 + 10)
    a_l10 = claim(master, "s2", T0 + 12)
    run(master, a_l10.buildid, {"test": 1}, T0 + 12)
    a_docs = claim(master, "s3", T0 + 14)
    run(master, a_docs.buildid, {}, T0 + 14)
    force(master, ["linux2", "linux10"], revision="aa222", repository=REPO)
    b_l2 = claim(master, "s1", T0 + 20)
    run(master, b_l2.buildid, {}, T0 + 20)
    b_l10 = claim(master, "s2", T0 + 22)
    run(master, b_l10.buildid, {}, T0 + 22)
    set_text(master, b_l10.buildid, "[]")
    force(master, ["linux2"], revision="zz111", repository=REPO)
    a2_l2 = claim(master, "s1", T0 + 30)
    run(master, a2_l2.buildid, {"test": 1}, T0 + 30)
    force(master, ["linux2"], branch="feature")
    c_l2 = claim(master, "s1", T0 + 40)
    force(master, ["docs"])
    d_docs = claim(master, "s3", T0 + 50)
    run(master, d_docs.buildid, {}, T0 + 50, props={"got_revision": "abc123def4567890ff"})
    try_job(master, ["linux10"], revision="r3", branch="release", project="frob",
            codebase="lib", repository=REPO)
    e_l10 = claim(master, "s2", T0 + 60)
    run(master, e_l10.buildid, {}, T0 + 60)
    force(master, ["win"])
    force(master, ["win"])
    force(master, ["linux10"], revision="later")
    assert [b.number for b in (a_l2, b_l2, a2_l2, c_l2)] == [0, 1, 2, 3]
    assert [b.number for b in (a_l10, b_l10, e_l10)] == [0, 1, 2]
    return {"running": c_l2}


@pytest.fixture
def grid_master(make_master):
    return make_master(CFG)


@pytest.fixture
def web(grid_master):
    application = grid_master.app()
    yield application.test_client()
    application.extensions["bbweb"].db.dispose()


@pytest.fixture
def history(grid_master, web):
    return build_history(grid_master)


# -- reading pages ------------------------------------------------------------------------------

def page(client, url: str, status: int = 200) -> str:
    resp = client.get(url)
    assert resp.status_code == status, (url, resp.status_code, resp.data[:400])
    assert resp.content_type == "text/html; charset=utf-8"
    return resp.get_data(as_text=True)


def text_of(fragment: str) -> str:
    """A cell's text as a reader sees it: tags dropped, ``<br>`` as ``|``."""
    fragment = re.sub(r"<br>", "|", fragment)
    return htmllib.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def table(html: str) -> list[list[tuple[str, str]]]:
    """The grid table as rows of (class, inner html) cells, header row first."""
    m = re.search(r'<table class="grid[^"]*">(.*?)</table>', html, re.S)
    assert m, html
    out = []
    for row in re.findall(r"<tr>(.*?)</tr>", m.group(1), re.S):
        out.append(re.findall(r'<t[hd] class="([^"]*)"[^>]*>(.*?)</t[hd]>', row, re.S))
    return out


def texts(html: str) -> list[list[str]]:
    return [[text_of(inner) for _cls, inner in row] for row in table(html)]


def classes(html: str) -> list[list[str]]:
    return [[cls for cls, _inner in row] for row in table(html)]


# -- /grid --------------------------------------------------------------------------------------

def test_grid_places_builds_by_stamp_in_start_order(history, web):
    html = page(web, "/grid")
    assert "<title>BuildBot: Frob &lt;&amp;&gt; Co</title>" in html
    rows = texts(html)
    assert rows[0] == [
        "Frob <&> Co", "zz111", "aa222", "latest in feature", "abc123def456...",
        "frob: lib: r3 in release [patch]"]
    # builders in natural order (linux2 before linux10), as on /builders
    assert [r[0] for r in rows[1:]] == [
        '<i>"evil"</i>|(offline)', "docs", "linux2|(building)", "linux10|(idle, plus 1)",
        "win|(offline, plus 2)"]
    by_builder = {r[0].split("|")[0]: r[1:] for r in rows[1:]}
    # linux2 built zz111 twice: the newer build (#2, failed) is shown, not #0
    assert by_builder["linux2"] == ["failed|test", "OK", "building", "", ""]
    assert by_builder["linux10"] == ["failed|test", "(no information)", "", "", "OK"]
    assert by_builder["docs"] == ["OK", "", "", "OK", ""]
    assert by_builder["win"] == ["", "", "", "", ""]
    assert by_builder['<i>"evil"</i>'] == ["", "", "", "", ""]
    cls = {r[0].split("|")[0]: c for r, c in zip(rows[1:], classes(html)[1:], strict=True)}
    assert cls["linux2"] == ["builder building", "build failure", "build success",
                             "build running", "build", "build"]
    assert cls["linux10"][0] == "builder idle"
    assert cls["win"][0] == "builder offline"
    assert classes(html)[0] == ["title"] + ["sourcestamp"] * 5
    # cells link to the builds, relative to the page
    assert '<a href="./builders/linux2/builds/2" title="linux2 #2: failure">' in html
    assert '<a href="./builders/linux2/builds/3" title="linux2 #3: running">building</a>' \
        in html
    assert '<th class="builder idle" scope="row"><a href="./builders/linux10">linux10</a>' \
        in html
    assert '<td class="build">&nbsp;</td>' in html


def test_grid_header_decorates_revisions(history, web):
    html = page(web, "/grid")
    header = table(html)[0]
    # revisions go through the site's revlink; the long got_revision is shortened
    assert '<a href="https://code.example.org/r/zz111">zz111</a>' in header[1][1]
    assert 'title="Revision abc123def4567890ff"' in header[4][1]
    assert '<a href="https://code.example.org/r/abc123def4567890ff">abc123def456...</a>' \
        in header[4][1]
    assert header[3][1] == "latest in feature"
    assert '<span class="project">frob:</span> <span class="codebase">lib:</span>' \
        in header[5][1]
    assert '<a href="http://example.org/frob">Frob &lt;&amp;&gt; Co</a>' in header[0][1]


def test_grid_width_keeps_the_newest_stamps(history, web):
    rows = texts(page(web, "/grid?width=2"))
    assert rows[0][1:] == ["abc123def456...", "frob: lib: r3 in release [patch]"]
    by_builder = {r[0].split("|")[0]: r[1:] for r in rows[1:]}
    assert by_builder["docs"] == ["OK", ""]
    assert by_builder["linux10"] == ["", "OK"]
    # each builder's window is the newest 2 builds too: linux2 has #2 (zz111) and #3
    rows = texts(page(web, "/grid?width=3"))
    assert rows[0][1:] == ["latest in feature", "abc123def456...",
                           "frob: lib: r3 in release [patch]"]
    rows = texts(page(web, "/grid?width=50"))
    assert len(rows[0]) == 6


def test_grid_width_window_decides_first_start(grid_master, web):
    """A stamp's place comes from the builds in the windows: with width=1 only each
    builder's newest build counts."""
    build_history(grid_master)
    rows = texts(page(web, "/grid?width=1"))
    assert rows[0][1:] == ["frob: lib: r3 in release [patch]"]
    by_builder = {r[0].split("|")[0]: r[1:] for r in rows[1:]}
    assert by_builder["linux10"] == ["OK"]
    assert by_builder["linux2"] == [""]


def test_grid_category_filter(history, web):
    html = page(web, "/grid?category=doc")
    rows = texts(html)
    assert [r[0] for r in rows[1:]] == ["docs"]
    assert rows[0] == ["Frob <&> Co|Category: doc", "zz111", "abc123def456..."]
    rows = texts(page(web, "/grid?category=doc&category=core&width=50"))
    assert rows[0][0] == "Frob <&> Co|Categories: doc core"
    assert [r[0].split("|")[0] for r in rows[1:]] == ["docs", "linux2", "linux10", "win"]
    html = page(web, "/grid?category=nothing")
    assert "No builders in nothing." in html and 'class="grid' not in html


def test_grid_branch_filter(history, web):
    rows = texts(page(web, "/grid?branch=feature"))
    assert rows[0] == ["Frob <&> Co|Branch: feature", "latest in feature"]
    by_builder = {r[0].split("|")[0]: r[1:] for r in rows[1:]}
    assert by_builder["linux2"] == ["building"]
    assert by_builder["docs"] == [""]
    # trunk: the default branch (None)
    rows = texts(page(web, "/grid?branch=trunk"))
    assert rows[0] == ["Frob <&> Co|Branch: trunk", "zz111", "aa222", "abc123def456..."]
    by_builder = {r[0].split("|")[0]: r[1:] for r in rows[1:]}
    assert by_builder["linux2"] == ["failed|test", "OK", ""]
    assert by_builder["linux10"] == ["failed|test", "(no information)", ""]
    # the width counts matching builds: linux2's newest trunk build is #2
    rows = texts(page(web, "/grid?branch=trunk&width=1"))
    assert rows[0][1:] == ["abc123def456..."]
    rows = texts(page(web, "/grid?branch=release"))
    assert rows[0][1:] == ["frob: lib: r3 in release [patch]"]
    # an empty branch is no filter
    assert len(texts(page(web, "/grid?branch="))[0]) == 6


def test_grid_reload(history, web):
    assert '<meta http-equiv="refresh" content="15">' in page(web, "/grid?reload=5")
    assert '<meta http-equiv="refresh" content="60">' in page(web, "/tgrid?reload=60")
    assert 'http-equiv="refresh"' not in page(web, "/grid")


@pytest.mark.parametrize("url", ["/grid?width=abc", "/grid?width=0", "/grid?width=-3",
                                 "/grid?width=1.5", "/tgrid?length=x", "/tgrid?length=0"])
def test_bad_sizes_are_400(web, url):
    html = page(web, url, status=400)
    name = "width" if "width" in url else "length"
    assert f"{name} must be" in html
    assert "at least 1" in html


def test_huge_sizes_are_capped(history, web):
    assert len(texts(page(web, "/grid?width=99999999999999999999"))[0]) == 6
    assert len(texts(page(web, "/tgrid?length=+500"))) == 6


def test_hostile_strings_are_escaped(grid_master, web):
    with grid_master.db.write() as conn:
        sync_builders(conn, grid_master.config)
        es.slave_connected(conn, "s5", {}, now=T0)
    evil = '<script>alert("x")</script>'
    force(grid_master, ['<i>"evil"</i>'], branch=evil, revision=evil, project=evil)
    b = claim(grid_master, "s5", T0 + 1)
    run(grid_master, b.buildid, {"test": 1}, T0 + 1)
    set_text(grid_master, b.buildid, '["<b>bad</b>", "&amp;"]')
    for url in ("/grid", "/tgrid"):
        html = page(web, url + "?category=%3Cx%3E&category=%3Cscript%3Ez&branch="
                    + "%3Cscript%3Ealert(%22x%22)%3C%2Fscript%3E")
        assert "<script" not in html and "<b>bad" not in html and "<i>" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
        assert "&lt;b&gt;bad&lt;/b&gt;<br>&amp;amp;" in html
        assert "&lt;i&gt;&#34;evil&#34;&lt;/i&gt;" in html
        assert "Categories: &lt;x&gt; &lt;script&gt;z" in html
        assert 'href="./builders/%3Ci%3E%22evil%22%3C%2Fi%3E/builds/0"' in html


# -- /tgrid -------------------------------------------------------------------------------------

def test_tgrid_is_the_transposed_grid(history, web):
    html = page(web, "/tgrid")
    rows = texts(html)
    assert rows[0] == ["Frob <&> Co", '<i>"evil"</i>|(offline)', "docs", "linux2|(building)",
                       "linux10|(idle, plus 1)", "win|(offline, plus 2)"]
    assert classes(html)[0][:3] == ["title", "builder offline", "builder idle"]
    assert [r[0] for r in rows[1:]] == [
        "zz111", "aa222", "latest in feature", "abc123def456...",
        "frob: lib: r3 in release [patch]"]
    assert rows[1][1:] == ["", "OK", "failed|test", "failed|test", ""]
    assert rows[3][1:] == ["", "", "building", "", ""]
    assert rows[5][1:] == ["", "", "", "OK", ""]
    assert '<th class="sourcestamp" scope="row">' in html
    assert '<th class="builder building" scope="col">' in html


def test_tgrid_length_and_rev_order(history, web):
    rows = texts(page(web, "/tgrid?length=2&rev_order=desc"))
    assert [r[0] for r in rows[1:]] == ["frob: lib: r3 in release [patch]",
                                       "abc123def456..."]
    rows = texts(page(web, "/tgrid?rev_order=desc"))
    assert [r[0] for r in rows[1:]][-1] == "zz111"
    # anything else is ascending
    for order in ("sideways", "DESC", ""):
        rows = texts(page(web, f"/tgrid?rev_order={order}"))
        assert rows[1][0] == "zz111", order
    # width is the grid's argument, length the tgrid's
    assert len(texts(page(web, "/tgrid?width=1"))) == 6
    assert len(texts(page(web, "/grid?length=1"))[0]) == 6


def test_tgrid_filters(history, web):
    rows = texts(page(web, "/tgrid?category=core&branch=trunk"))
    assert rows[0] == ["Frob <&> Co|Category: core|Branch: trunk", "linux2|(building)",
                       "linux10|(idle, plus 1)", "win|(offline, plus 2)"]
    assert [r[0] for r in rows[1:]] == ["zz111", "aa222"]


# -- empty sites and navigation -----------------------------------------------------------------

def test_empty_history(web):
    for url in ("/grid", "/tgrid"):
        rows = texts(page(web, url))
        assert rows[0][0] == "Frob <&> Co"
        assert len(rows[0]) == (1 if url == "/grid" else 6)
    assert texts(page(web, "/grid"))[1] == ['<i>"evil"</i>|(offline)']
    assert texts(page(web, "/grid"))[-1] == ["win|(offline)"]


def test_nav_links_and_trailing_slash(web):
    html = page(web, "/grid")
    assert '<a href="./grid" class="current" aria-current="page">Grid</a>' in html
    assert '<a href="./tgrid">T-Grid</a>' in html
    page(web, "/grid/", status=404)
    assert web.head("/tgrid").status_code == 200
    assert web.post("/grid").status_code == 200


# -- cost ---------------------------------------------------------------------------------------

SMALL_CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('s%d' % i, 'pw') for i in range(NB)]
f = BuildFactory([ShellCommand(command=['true'], name='t')])
c['builders'] = [BuilderConfig(name='b%d' % i, slavenames=['s%d' % i], factory=f)
                 for i in range(NB)]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['b%d' % i for i in range(NB)])]
"""


def grow(master, n: int, t: float) -> float:
    """``n`` more builds on every builder, each of its own revision."""
    names = list(master.config.builders)
    for _ in range(n):
        for i, name in enumerate(names):
            force(master, [name], revision=f"r{t:.0f}")
            b = claim(master, f"s{i}", t)
            t = run(master, b.buildid, {}, t) + 1
    return t


def statements(app, url: str) -> list[str]:
    client = app.test_client()
    assert client.get(url).status_code == 200  # warm-up: config, templates
    with counting(app) as found:
        assert client.get(url).status_code == 200
    return found


@pytest.mark.parametrize("nb", [2, 6])
def test_statement_count_does_not_grow(make_master, nb):
    master = make_master(SMALL_CFG.replace("NB", str(nb)))
    app = master.app()
    try:
        t = grow(master, 2, T0)
        urls = ["/grid", "/tgrid?length=3", "/grid?branch=trunk&width=2",
                "/grid?branch=elsewhere"]
        before = {u: len(statements(app, u)) for u in urls}
        grow(master, 4, t)
        after = {u: len(statements(app, u)) for u in urls}
        assert after == before
        # builder rows, running builds, pending counts, connected slaves, builds, stamps:
        # the same whatever the number of builders
        assert after["/grid"] == after["/tgrid?length=3"] == 6
        assert after["/grid?branch=trunk&width=2"] == 6
        # no match, and the first window already held every build: no stamps to read
        assert after["/grid?branch=elsewhere"] == 5
        html = app.test_client().get("/grid?width=50").get_data(as_text=True)
        assert len(texts(html)[0]) == 1 + 6 * nb  # every build its own revision
    finally:
        app.extensions["bbweb"].db.dispose()


def test_branch_search_reaches_past_the_first_window(make_master):
    """A branch built rarely is still found among a builder's newest 200 builds."""
    master = make_master(SMALL_CFG.replace("NB", "1"))
    app = master.app()
    try:
        force(master, ["b0"], branch="rare", revision="old1")
        b = claim(master, "s0", T0)
        t = run(master, b.buildid, {}, T0) + 1
        grow(master, 21, t)  # newer than the first window (4 x width, at least 20)
        client = app.test_client()
        with counting(app) as found:
            rows = texts(page(client, "/grid?branch=rare&width=1"))
        assert rows[0][1:] == ["old1 in rare"]
        assert rows[1][1:] == ["OK"]
        assert len(found) == 7  # one more query for the builder short of matches
        assert texts(page(client, "/grid?width=1"))[0][1] != "old1 in rare"
    finally:
        app.extensions["bbweb"].db.dispose()
