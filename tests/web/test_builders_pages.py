"""``/builders``, ``/builders/X``, ``/one_line_per_build[/X]``, ``/one_box_per_builder`` and
``/buildstatus``, over history built through the engine, on SQLite
and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from bbweb.db.schema import slaves as slaves_table
from bbweb.db.schema import steps as steps_table
from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.changes import ChangeInput, add_change
from bbweb.engine.force import force_build
from tests.support.history import claim, force, run
from tests.support.querycount import counting

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Test Project'
c['buildbotURL'] = 'http://bb.example.org/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('slave1', 'pw'), BuildSlave('slave2', 'pw'),
               BuildSlave('slave10', 'pw'), BuildSlave('slave3', 'pw')]
two = BuildFactory([ShellCommand(command=['make'], name='compile'),
                    ShellCommand(command=['make', 'test'], name='test')])
one = BuildFactory([ShellCommand(command=['make', 'html'], name='html')])
c['builders'] = [
    BuilderConfig(name='runtests', slavenames=['slave1', 'slave2'], factory=two,
                  category='core', description='Runs the unit tests'),
    BuilderConfig(name='docs', slavenames=['slave1'], factory=one),
    BuilderConfig(name='odd name/x', slavenames=['slave3'], factory=one),
    BuilderConfig(name='lonely', slavenames=['slave10'], factory=one),
]
c['schedulers'] = [
    SingleBranchScheduler(name='all', branch=None, builderNames=['runtests', 'docs']),
    ForceScheduler(name='force',
                   builderNames=['runtests', 'docs', 'odd name/x', 'lonely']),
]
"""

SLAVE1_INFO = {"host": "host1.example.org", "admin": "Admin <admin@example.org>",
               "version": "0.8.9", "access_uri": "ssh://host1.example.org"}
T0 = 1_700_000_000.0


# -- building history through the engine ---------------------------------------------------------







def change(master, t: float, **kw: Any) -> int:
    with master.db.write() as conn:
        return add_change(conn, master.config, ChangeInput(**kw), now=t)


def set_paused(master, slave: str, paused: bool = True) -> None:
    # no engine call pauses a slave yet (that is the slave-actions issue)
    with master.db.write() as conn:
        conn.execute(slaves_table.update().where(slaves_table.c.name == slave)
                     .values(paused=paused))


def build_scenario(master) -> dict[str, Any]:
    """runtests #0 (slave1, FAILURE, alice's change, got_revision abc123), docs #0 (slave1,
    SUCCESS), runtests #1 (slave2, SUCCESS, forced by bob on branch feature),
    odd name/x #0 (slave3, SUCCESS), runtests #2 (slave1, running, forced by carol);
    pending: runtests (dave, pprop=x; zed's change), docs (zed's change), lonely (erin).
    slave1 connected, slave2 disconnected, slave3 connected and paused, slave10 never seen.
    """
    cfg = master.config
    with master.db.write() as conn:
        sync_builders(conn, cfg)
        es.slave_connected(conn, "slave1", SLAVE1_INFO, now=T0)
        es.slave_connected(conn, "slave2", {"host": "host2"}, now=T0)
        es.slave_connected(conn, "slave3", {"host": "host3"}, now=T0)
    alice = change(master, T0 + 1, author="alice <alice@example.org>",
                   comments="fix the frobnicator", files=["a.c"], revision="abc123",
                   repository="git://example.org/repo.git", project="frob")
    r0 = claim(master, "slave1", T0 + 10)
    assert (r0.builder, r0.number) == ("runtests", 0)
    run(master, r0.buildid, {"test": 1}, T0 + 11, props={"got_revision": "abc123"})
    d0 = claim(master, "slave1", T0 + 20)
    assert (d0.builder, d0.number) == ("docs", 0)
    run(master, d0.buildid, {}, T0 + 21)
    force(master, "runtests", reason="try again", owner="bob", branch="feature")
    r1 = claim(master, "slave2", T0 + 30)
    assert (r1.builder, r1.number) == ("runtests", 1)
    run(master, r1.buildid, {}, T0 + 31)
    with master.db.write() as conn:
        es.mark_disconnected(conn, es.slave_id(conn, "slave2"), "slave2")
    force(master, "odd name/x", reason="odd one", owner="olga")
    o0 = claim(master, "slave3", T0 + 40)
    assert (o0.builder, o0.number) == ("odd name/x", 0)
    run(master, o0.buildid, {}, T0 + 41)
    set_paused(master, "slave3")
    force(master, "runtests", reason="third", owner="carol")
    r2 = claim(master, "slave1", T0 + 50)
    assert (r2.builder, r2.number) == ("runtests", 2)
    with master.db.write() as conn:
        spec = eb.next_step(conn, cfg, r2.buildid, now=T0 + 51)
        eb.append_step_log(conn, cfg, spec["id"], "stdio", [("o", "building\n")])
    force(master, "runtests", reason="queued", owner="dave", properties={"pprop": "x"})
    zed = change(master, T0 + 60, author="zed <zed@example.org>", comments="more",
                 files=["b.c"], revision="def4567890abcdef")
    force(master, "lonely", reason="nobody home", owner="erin")
    return {"alice": alice, "zed": zed}


@pytest.fixture
def site_master(make_master):
    return make_master(CFG)


@pytest.fixture
def site_app(site_master):
    application = site_master.app()
    yield application
    application.extensions["bbweb"].db.dispose()


@pytest.fixture
def web(site_app):
    return site_app.test_client()


@pytest.fixture
def scenario(site_master, web):
    return build_scenario(site_master)


def page(client, url: str, status: int = 200) -> str:
    resp = client.get(url)
    assert resp.status_code == status, (url, resp.status_code, resp.data[:400])
    assert resp.content_type == "text/html; charset=utf-8"
    return resp.get_data(as_text=True)


def rows_of(html: str, table_class: str) -> list[str]:
    m = re.search(r'<table class="info ' + table_class + r'">(.*?)</table>', html, re.S)
    assert m, table_class
    body = m.group(1).split("</thead>")[-1]
    return re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)


def build_numbers(html: str) -> list[str]:
    """Build labels (``#N``) of a build table or one-line list, in page order."""
    return re.findall(r'/builds/\d+">(#\d+)</a>', html)


def table_builds(html: str) -> list[tuple[str, str, str]]:
    """(builder, #N, result word) per row of the page's build table."""
    out = []
    for row in rows_of(html, "buildtable"):
        word = re.search(r'<td class="box result-cell (\w+)">(\w+)</td>', row)
        assert word and word.group(1) == word.group(2)
        num = re.search(r'href="[^"]*builders/([^"/]+)/builds/\d+">(#\d+)</a>', row)
        assert num
        out.append((num.group(1), num.group(2), word.group(2)))
    return out


# -- /builders ------------------------------------------------------------------------------------

def test_builders_lists_every_builder_with_last_build_and_activity(scenario, web):
    html = page(web, "/builders")
    assert "<title>Builders</title>" in html and "<h1>Builders</h1>" in html
    rows = rows_of(html, "builders")
    names = [re.search(r'<td class="box builder"><a href="([^"]+)">([^<]+)</a>', r).groups()
             for r in rows]
    # natural order, links relative to /builders and quoted as one segment
    assert names == [("./builders/docs", "docs"), ("./builders/lonely", "lonely"),
                     ("./builders/odd%20name%2Fx", "odd name/x"),
                     ("./builders/runtests", "runtests")]
    docs, lonely, odd, runtests = rows
    assert '<td class="LastBuild box success"><a href="./builders/docs/builds/0">#0</a>' in docs
    assert "Build successful" in docs or "build successful" in docs
    assert '<td class="Activity box idle">idle<br>1 pending</td>' in docs
    assert '<td class="LastBuild box">no build</td>' in lonely
    assert '<td class="Activity box offline">offline<br>1 pending</td>' in lonely
    assert 'href="./builders/odd%20name%2Fx/builds/0">#0</a>' in odd
    assert '<td class="LastBuild box success"><a href="./builders/runtests/builds/1">#1</a>' \
        in runtests
    assert 'class="Activity box building">building<br>' in runtests
    assert '<a href="./builders/runtests/builds/2">#2</a> ETA: any moment now' in runtests
    assert "2 pending" in runtests
    # the trailing-slash form is the same page, one level deeper
    html2 = page(web, "/builders/")
    assert 'href="../builders/runtests"' in html2 and 'href="../default.css"' in html2


def test_builders_selected_by_name_in_the_given_order(scenario, web):
    html = page(web, "/builders?builder=runtests&builder=docs")
    found = re.findall(r'<td class="box builder"><a href="[^"]+">([^<]+)</a>', html)
    assert found == ["runtests", "docs"]
    html = page(web, "/builders?builder=nope", status=404)
    assert "No such builder &#39;nope&#39;" in html and 'class="footer"' in html


def test_builders_branch_filter(scenario, web):
    html = page(web, "/builders?branch=feature")
    assert "<h1>Builders: feature</h1>" in html
    rows = dict(zip(re.findall(r'<td class="box builder"><a href="[^"]+">([^<]+)</a>', html),
                    rows_of(html, "builders"), strict=True))
    assert 'href="./builders/runtests/builds/1">#1</a>' in rows["runtests"]
    assert '<td class="LastBuild box">no build</td>' in rows["docs"]
    # trunk also matches the default branch; the label is the short got_revision
    html = page(web, "/builders?branch=trunk&branch=")
    rows = dict(zip(re.findall(r'<td class="box builder"><a href="[^"]+">([^<]+)</a>', html),
                    rows_of(html, "builders"), strict=True))
    assert '<td class="LastBuild box failure"><a href="./builders/runtests/builds/0">abc123</a>' \
        in rows["runtests"]
    assert "Failed test" in rows["runtests"] or "failed test" in rows["runtests"]
    assert 'href="./builders/docs/builds/0">#0</a>' in rows["docs"]


def test_one_box_per_builder_redirects(web):
    resp = web.get("/one_box_per_builder")
    assert resp.status_code == 302 and resp.headers["Location"] == "builders"


# -- /builders/X -----------------------------------------------------------------------------------

def test_builder_page(scenario, web):
    resp = web.get("/builders/runtests")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-cache"
    html = resp.get_data(as_text=True)
    assert "<title>Buildbot: runtests</title>" in html
    assert "<h1>Builder runtests</h1>" in html
    assert '<div class="BuilderDescription">Runs the unit tests</div>' in html
    # current build: link, state, step, slave; #1 was quick and #2 started long ago
    current = html.split("<h2>Current Builds:</h2>")[1].split("</ul>")[0]
    assert '<a href="../builders/runtests/builds/2">#2</a>' in current
    assert "compile" in current and "ETA: any moment now" in current
    assert '<a href="../buildslaves/slave1">slave1</a>' in current
    # pending: the forced one with owner and reason, the change with rev and author
    pending = html.split("<h2>Pending Build Requests:</h2>")[1].split("</ul>")[0]
    items = re.findall(r"<li>(.*?)</li>", pending, re.S)
    assert len(items) == 2
    by_change, forced = items  # in claim order: the change came first (T0 + 60)
    assert re.match(r"\(<time>\w{3} \d\d \d\d:\d\d:\d\d</time>, waiting [\d\w ,]+\)", forced)
    assert "<b>Forced build</b> by dave <small>queued</small>" in forced
    assert 'def4567890ab...' in by_change and "zed" in by_change
    assert f'<a href="../changes/{scenario["zed"]}">' in by_change
    # recent builds, newest first, result words
    assert table_builds(html) == [("runtests", "#1", "success"),
                                  ("runtests", "#0", "failure")]
    assert "<th scope=\"col\">Builder</th>" not in html
    assert "Show more" not in html  # two builds shown of twenty asked for: no more exist
    # slaves with their state
    slaves = rows_of(html, "slaves")
    assert 'href="../buildslaves/slave1">slave1</a>' in slaves[0]
    assert '<td class="box idle">connected</td>' in slaves[0]
    assert "Admin &lt;admin<span" in slaves[0]  # admin, through the email filter
    assert '<td class="box offline">offline</td>' in slaves[1]


def test_builder_page_numbuilds_and_bad_arguments(scenario, web):
    html = page(web, "/builders/runtests?numbuilds=1")
    assert [n for _b, n, _r in table_builds(html)] == ["#1"]
    assert '<a href="?numbuilds=6">Show more</a>' in html
    html = page(web, "/builders/runtests?numbuilds=lots&maxsearch=x")
    assert [n for _b, n, _r in table_builds(html)] == ["#1", "#0"]
    html = page(web, "/builders/lonely")
    assert "No current builds" in html and "No matching builds found" in html
    assert "<b>Forced build</b> by erin" in html
    assert '<td class="box offline">offline</td>' in html


def test_builder_page_property_filters(scenario, web):
    # pending requests match on the value (0.8 compared (value, source) and hid them all)
    html = page(web, "/builders/runtests?property.pprop=x")
    assert "No current builds" in html
    pending = html.split("<h2>Pending Build Requests:</h2>")[1].split("</ul>")[0]
    assert pending.count("<li>") == 1 and "by dave" in pending
    assert "No matching builds found" in html
    html = page(web, "/builders/runtests?property.owner=bob&numbuilds=1")
    assert '<a href="?numbuilds=6&amp;property.owner=bob">Show more</a>' in html  # keeps filter
    html = page(web, "/builders/runtests?property.owner=bob")
    assert [n for _b, n, _r in table_builds(html)] == ["#1"]
    assert "No Pending Build Requests" in html
    html = page(web, "/builders/runtests?property.owner=carol")
    assert '<a href="../builders/runtests/builds/2">#2</a>' in html
    assert "No matching builds found" in html
    html = page(web, "/builders/runtests?property.got_revision=abc123&maxsearch=1")
    assert "No matching builds found" in html  # #0 is beyond the search window
    html = page(web, "/builders/runtests?property.got_revision=abc123&maxsearch=5")
    assert [n for _b, n, _r in table_builds(html)] == ["#0"]


def test_builder_names_with_space_and_slash(scenario, web):
    html = page(web, "/builders/odd%20name%2Fx")
    assert "<h1>Builder odd name/x</h1>" in html
    # one path segment to the browser: links go up one level
    assert '<link rel="stylesheet" href="../default.css">' in html
    assert 'href="../builders/odd%20name%2Fx/builds/0">#0</a>' in html
    assert '<td class="box paused">paused</td>' in html
    html = page(web, "/builders/odd%20name%2Fx/")
    assert '<link rel="stylesheet" href="../../default.css">' in html
    resp = web.get("/builders/odd%20name%2Fx/builds")
    assert resp.status_code == 200 and resp.content_type.startswith("text/plain")
    assert resp.get_data(as_text=True) == "subpages shows data for each build"


def test_builder_trailing_slash_unknown_and_subpages(scenario, web):
    html = page(web, "/builders/runtests/")
    assert "<h1>Builder runtests</h1>" in html
    assert 'href="../../builders/runtests/builds/1">#1</a>' in html
    resp = web.get("/builders/runtests/builds")
    assert resp.data == b"subpages shows data for each build"
    html = page(web, "/builders/nope", status=404)
    assert "No such builder &#39;nope&#39;" in html
    assert '<a href="../" class="home">' in html
    page(web, "/builders/runtests/nothing", status=404)


# -- /one_line_per_build ------------------------------------------------------------------------

def test_one_line_per_build_orders_by_finish_time(scenario, web):
    html = page(web, "/one_line_per_build")
    assert "<title>Recent Builds</title>" in html
    assert "<h1>Last 20 finished builds</h1>" in html
    assert table_builds(html) == [("odd%20name%2Fx", "#0", "success"),
                                  ("runtests", "#1", "success"),
                                  ("docs", "#0", "success"),
                                  ("runtests", "#0", "failure")]
    assert '<th scope="col">Builder</th>' in html
    assert '<td class="builder"><a href="./builders/odd%20name%2Fx">odd name/x</a></td>' in html
    # revision cell: got_revision (short) or the requested revision; blamelist
    rows = rows_of(html, "buildtable")
    assert "abc123" in rows[3] and "alice" in rows[3]
    assert "Failed test" in rows[3]


def test_one_line_per_build_arguments(scenario, web):
    html = page(web, "/one_line_per_build?numbuilds=2")
    assert "<h1>Last 2 finished builds</h1>" in html
    assert [n for _b, n, _r in table_builds(html)] == ["#0", "#1"]
    html = page(web, "/one_line_per_build?builder=runtests")
    assert "of builders: <a href=\"./builders/runtests\">runtests</a>" in html
    assert table_builds(html) == [("runtests", "#1", "success"),
                                  ("runtests", "#0", "failure")]
    html = page(web, "/one_line_per_build?branch=feature")
    assert "<h1>Last 20 finished builds: feature</h1>" in html
    assert table_builds(html) == [("runtests", "#1", "success")]
    html = page(web, "/one_line_per_build?branch=nothing-like-it")
    assert "No matching builds found" in html
    html = page(web, "/one_line_per_build?reload=30")
    assert '<meta http-equiv="refresh" content="30">' in html
    page(web, "/one_line_per_build?builder=nope", status=404)
    html = page(web, "/one_line_per_build/")
    assert 'href="../builders/runtests/builds/1">#1</a>' in html


def test_one_line_per_build_of_one_builder(scenario, web):
    html = page(web, "/one_line_per_build/runtests")
    assert "<title>Recent Builds of runtests</title>" in html
    assert "Last 20 builds of builder" in html
    lines = re.findall(r"<li[^>]*>(.*?)</li>", html.split('class="buildlines"')[1], re.S)
    assert len(lines) == 2
    assert re.match(r"\(<time>\w{3} \d\d \d\d:\d\d</time>\) Rev: ", lines[0])
    assert '<span class="box result-cell success">success</span>' in lines[0]
    assert '<a href="../builders/runtests/builds/1">#1</a> - Build successful' in lines[0]
    assert "Rev: abc123" in lines[1] and "failure</span>" in lines[1]
    html = page(web, "/one_line_per_build/runtests?numbuilds=1&branch=trunk")
    assert build_numbers(html) == ["#0"]
    html = page(web, "/one_line_per_build/lonely")
    assert "No matching builds found" in html
    page(web, "/one_line_per_build/nope", status=404)
    html = page(web, "/one_line_per_build/odd%20name%2Fx")
    assert 'href="../builders/odd%20name%2Fx/builds/0">#0</a>' in html


# -- /buildstatus ---------------------------------------------------------------------------------

def test_buildstatus_stacks_steps_last_first(scenario, web):
    resp = web.get("/buildstatus?builder=runtests&number=0")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-cache"
    html = resp.get_data(as_text=True)
    assert 'class="header"' not in html and 'class="footer"' not in html
    cells = re.findall(r"<td class=\"box (\w+)\">(.*?)</td>", html, re.S)
    assert [c[0] for c in cells] == ["failure", "success", "start"]
    assert cells[0][1].startswith("test<br>failed")
    assert 'href="./builders/runtests/builds/0/steps/test/logs/stdio" target="_blank"' \
        in cells[0][1]
    assert '<a href="./builders/runtests/builds/0" target="_blank" rel="noopener">Build 0</a>' \
        in cells[2][1]
    assert all('target="_blank"' in a for a in re.findall(r"<a [^>]*>", html))
    # the running build: only started steps
    html = page(web, "/buildstatus?builder=runtests&number=2")
    cells = re.findall(r"<td class=\"box (\w+)\">", html)
    assert cells == ["running", "start"]
    # relative numbers count back from the latest
    assert "Build 2" in page(web, "/buildstatus?builder=runtests&number=-1")


def test_buildstatus_errors_have_status_codes(scenario, web):
    html = page(web, "/buildstatus", status=400)
    assert "builder and number parameter missing" in html
    page(web, "/buildstatus?builder=runtests", status=400)
    page(web, "/buildstatus?builder=runtests&number=x", status=400)
    page(web, "/buildstatus?builder=runtests&number=99999999999", status=400)
    assert "unknown builder" in page(web, "/buildstatus?builder=nope&number=0", status=404)
    assert "unknown build 7" in page(web, "/buildstatus?builder=runtests&number=7",
                                     status=404)
    assert "unknown build" in page(web, "/buildstatus?builder=lonely&number=0", status=404)


# -- hostile strings ------------------------------------------------------------------------------

HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


def hostile_scenario(master) -> None:
    cfg = master.config
    evil = HOSTILE[0] + HOSTILE[1]
    with master.db.write() as conn:
        sync_builders(conn, cfg)
        es.slave_connected(conn, "slave1", {"host": evil, "admin": evil, "version": evil,
                                            "access_uri": "javascript:alert(1)",
                                            evil: evil}, now=T0)
        es.slave_connected(conn, "slave2", {"host": "h2",
                                            "access_uri": evil}, now=T0)
    change(master, T0 + 1, author=evil, comments=evil, files=[evil], revision=evil,
           properties={"cprop": evil})
    r0 = claim(master, "slave1", T0 + 10)
    run(master, r0.buildid, {"test": 1}, T0 + 11, props={"got_revision": evil})
    d0 = claim(master, "slave1", T0 + 20)
    run(master, d0.buildid, {}, T0 + 21)
    force(master, "runtests", reason=evil, owner=evil, branch=evil,
          properties={"p": evil})
    r1 = claim(master, "slave2", T0 + 30)
    run(master, r1.buildid, {}, T0 + 31, props={"got_revision": {"": evil, "x": evil}})
    force(master, "runtests", reason=evil, owner=evil, branch=evil, revision=evil,
          properties={"p": evil})
    change(master, T0 + 40, author=evil, comments=evil, files=["f"], revision=evil)
    force(master, "runtests", reason=evil, owner=evil, branch=evil, revision=evil)
    r2 = claim(master, "slave1", T0 + 50)
    with master.db.write() as conn:
        eb.next_step(conn, cfg, r2.buildid, now=T0 + 51)


def assert_escaped(html: str, url: str, shown: bool = True) -> None:
    """No markup of the hostile strings; when ``shown``, the page does show them
    (escaped), so the check is not vacuous. bbweb's own live-update script aside."""
    html = re.sub(r'<script src="(\.\./)*static/live\.js" defer></script>', "", html)
    for bad in HOSTILE + ["<img", "<script"]:
        assert bad not in html, (url, bad)
    assert not re.search(r"""href=["']?\s*javascript:""", html), url
    if shown:
        assert "&lt;script&gt;" in html or "onerror=alert(1)&gt;" in html, url


def test_hostile_strings_are_escaped_everywhere(site_master, web):
    hostile_scenario(site_master)
    evil_q = "%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%3E%3Cimg+src%3Dx+onerror%3Dalert(1)%3E"
    urls = [f"/builders?branch={evil_q}", "/builders/runtests",
            "/builders/runtests?numbuilds=50", f"/builders/runtests?property.p={evil_q}",
            "/one_line_per_build", f"/one_line_per_build?branch={evil_q}",
            "/one_line_per_build/runtests", f"/one_line_per_build/runtests?branch={evil_q}",
            "/buildslaves", "/buildslaves/slave1", "/buildslaves/slave2"]
    for url in urls:
        assert_escaped(page(web, url), url)
    # pages without user text of this scenario (step texts come from the configuration)
    for url in ["/builders", "/buildstatus?builder=runtests&number=0",
                "/buildstatus?builder=runtests&number=1"]:
        assert_escaped(page(web, url), url, shown=False)
    # the property filter matches the hostile value and shows the pending request
    html = page(web, f"/builders/runtests?property.p={evil_q}")
    assert "<b>Forced build</b> by &lt;script&gt;" in html
    for url in [f"/buildstatus?builder={evil_q}&number=0", f"/builders/{evil_q}",
                f"/one_line_per_build/{evil_q}", f"/buildslaves/{evil_q}",
                f"/builders?builder={evil_q}"]:
        resp = web.get(url)
        assert resp.status_code == 404, url
        assert_escaped(resp.get_data(as_text=True), url, shown="buildstatus" not in url)


# -- query counts ---------------------------------------------------------------------------------

QCFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('s1', 'pw'), BuildSlave('s2', 'pw')]
f = BuildFactory([ShellCommand(command=['make'], name='compile'),
                  ShellCommand(command=['make', 'test'], name='test')])
c['builders'] = [BuilderConfig(name='b', slavenames=['s1', 's2'], factory=f),
                 BuilderConfig(name='other', slavenames=['s1', 's2'], factory=f)]
c['schedulers'] = [SingleBranchScheduler(name='all', branch=None,
                                         builderNames=['b', 'other']),
                   ForceScheduler(name='force', builderNames=['b', 'other'])]
"""


def add_builds(master, count: int, start: int) -> None:
    """``count`` finished builds on each builder (every third from a change, which feeds
    both builders; the others forced, every other one on branch ``br``), alternating
    results, each in one transaction."""
    cfg = master.config
    for i in range(start, start + count):
        with master.db.write() as conn:
            if i % 3 == 0:
                add_change(conn, cfg, ChangeInput(author=f"dev{i % 4}", files=[f"f{i}.c"],
                                                  revision=f"r{i}", properties={"n": i}))
            else:
                force_build(conn, cfg, ["b", "other"], scheduler="force", reason=str(i),
                            owner="me", branch="br" if i % 2 else None)
            for slave in ("s1", "s2"):
                claimed = eb.claim_build_request(conn, cfg, slave, es.slave_id(conn, slave))
                assert claimed is not None
                while (spec := eb.next_step(conn, cfg, claimed.buildid)) is not None:
                    eb.append_step_log(conn, cfg, spec["id"], "stdio", [("o", "x\n")])
                    eb.finish_step(conn, cfg, spec["id"], i % 2,
                                   properties={"got_revision": f"g{i}"})


def start_live_state(master) -> int:
    """One running build on ``b`` (s1, first step started) and one pending request."""
    cfg = master.config
    force(master, "b", reason="live", owner="me")
    with master.db.write() as conn:
        running = eb.claim_build_request(conn, cfg, "s1", es.slave_id(conn, "s1"))
        assert running is not None
        eb.next_step(conn, cfg, running.buildid)
    force(master, "b", reason="waiting", owner="me")
    return running.buildid


def finish_live_state(master, buildid: int) -> None:
    """Finish the running build and run the pending request to the end."""
    cfg = master.config
    with master.db.write() as conn:
        rows = conn.execute(sa.select(steps_table.c.id).where(
            steps_table.c.buildid == buildid, steps_table.c.started_at.isnot(None),
            steps_table.c.finished_at.is_(None))).all()
        for (stepid,) in rows:
            eb.finish_step(conn, cfg, stepid, 0)
        while (nxt := eb.next_step(conn, cfg, buildid)) is not None:
            eb.finish_step(conn, cfg, nxt["id"], 0)
        claimed = eb.claim_build_request(conn, cfg, "s2", es.slave_id(conn, "s2"))
        assert claimed is not None
        while (nxt := eb.next_step(conn, cfg, claimed.buildid)) is not None:
            eb.finish_step(conn, cfg, nxt["id"], 0)



COUNTED_PAGES = [
    "/builders", "/builders?branch=br", "/builders/b", "/builders/b?property.owner=me",
    "/builders/b?numbuilds=5", "/one_line_per_build", "/one_line_per_build?branch=br",
    "/one_line_per_build/b", "/buildslaves", "/buildslaves/s1",
    "/buildstatus?builder=b&number=-1",
]


def measure(app) -> dict[str, int]:
    client = app.test_client()
    counts = {}
    for url in COUNTED_PAGES:
        with counting(app) as statements:
            resp = client.get(url)
        assert resp.status_code == 200, (url, resp.data[:300])
        counts[url] = len(statements)
    return counts


def test_query_count_does_not_grow_with_history(make_master):
    master = make_master(QCFG)
    app = master.app()
    try:
        with master.db.write() as conn:
            sync_builders(conn, master.config)
            es.slave_connected(conn, "s1", {"host": "h1"})
            es.slave_connected(conn, "s2", {"host": "h2"})
        add_builds(master, 3, 0)
        live = start_live_state(master)
        small = measure(app)
        finish_live_state(master, live)
        add_builds(master, 12, 3)
        start_live_state(master)
        large = measure(app)
        assert large == small
        # a page of builds is a handful of batched queries
        assert max(large.values()) <= 30, large
    finally:
        app.extensions["bbweb"].db.dispose()


def test_builder_names_with_non_ascii_digits_sort_without_error(make_master):
    """Natural order splits names into digit runs; a superscript digit is not one (it
    is str.isdigit() but int() refuses it), an Arabic-Indic one is."""
    from tests.conftest import DEFAULT_CFG

    cfg = DEFAULT_CFG.replace("name='docs'", "name='1\u00b2'").replace(
        "builderNames=['runtests', 'docs']", "builderNames=['runtests', '1\u00b2']")
    client = make_master(cfg).app().test_client()
    resp = client.get("/builders")
    assert resp.status_code == 200
    assert "1\u00b2" in resp.get_data(as_text=True)
