"""The build page (``/builders/X/builds/N``) and the step page (``…/steps/S``), through HTTP
against history the engine built, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.changes import ChangeInput, add_change
from tests.support.history import claim, force
from tests.support.history import run as run_build

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Test Project'
c['db_url'] = DB_URL
c['properties'] = {'global_prop': 'g'}
c['slaves'] = [BuildSlave('slave1', 'pw'), BuildSlave('slave 2/x', 'pw')]
two = BuildFactory([ShellCommand(command=['make'], name='compile'),
                    ShellCommand(command=['make', 'test'], name='test'),
                    ShellCommand(command=['true'], name='cleanup', hideStepIf=True)])
c['builders'] = [
    BuilderConfig(name='runtests', slavenames=['slave1'], factory=two),
    BuilderConfig(name='odd b/uilder', slavenames=['slave 2/x'],
                  factory=BuildFactory([ShellCommand(command=['ls'], name='list it/now')])),
]
c['schedulers'] = [
    SingleBranchScheduler(name='all', branch='main', builderNames=['runtests']),
    ForceScheduler(name='force', builderNames=['runtests', 'odd b/uilder']),
]
c['status'] = [WebStatus(http_port=8010,
    revlink='http://vcs.example.org/rev/%s',
    projects={'frob': 'http://frob.example.org/'},
    repositories={'git://example.org/repo.git': 'http://example.org/repo'})]
"""

T0 = 1_700_000_000.0
LONG = "x" * 600


def text_of(resp) -> str:
    return resp.get_data(as_text=True)








def scenario(master) -> dict[str, Any]:
    """runtests #0 FAILURE from alice's change (got_revision set); runtests #1 SUCCESS,
    forced with a long and a dict property; runtests #2 running its first step;
    'odd b/uilder' #0 SUCCESS on 'slave 2/x'."""
    cfg = master.config
    with master.db.write() as conn:
        sync_builders(conn, cfg)
        es.slave_connected(conn, "slave1", {"host": "h1"}, now=T0)
        es.slave_connected(conn, "slave 2/x", {"host": "h2"}, now=T0)
        changeid = add_change(conn, cfg, ChangeInput(
            author="alice <alice@example.org>", comments="fix the frobnicator, see #12",
            files=["src/b.c", "src/a.c"], revision="abc123", when=T0 + 0.5,
            branch="main", category="bugfix", properties={"ticket": 42},
            repository="git://example.org/repo.git", project="frob"), now=T0 + 1)
    r0 = claim(master, "slave1", T0 + 10)
    assert (r0.builder, r0.number) == ("runtests", 0)
    run_build(master, r0.buildid, {"test": 1}, T0 + 11, props={"got_revision": "abc123"})
    force(master, "runtests", reason="try again", owner="bob",
          properties={"long_one": LONG, "nested": {"k": "v", "n": 1}})
    r1 = claim(master, "slave1", T0 + 30)
    run_build(master, r1.buildid, {}, T0 + 31)
    force(master, "runtests", reason="third", owner="carol")
    r2 = claim(master, "slave1", T0 + 40)
    with master.db.write() as conn:
        spec = eb.next_step(conn, cfg, r2.buildid, now=T0 + 41)
        eb.append_step_log(conn, cfg, spec["id"], "stdio", [("o", "building\n")])
    force(master, "odd b/uilder", reason="odd one", owner="dave")
    o0 = claim(master, "slave 2/x", T0 + 50)
    run_build(master, o0.buildid, {}, T0 + 51)
    return {"changeid": changeid, "running": r2.buildid}


@pytest.fixture
def bmaster(make_master):
    return make_master(CFG)


@pytest.fixture
def bclient(bmaster):
    app = bmaster.app()
    yield app.test_client()
    app.extensions["bbweb"].db.dispose()


@pytest.fixture
def history(bmaster, bclient) -> dict[str, Any]:
    return scenario(bmaster)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "href" and value is not None:
                self.hrefs.append(value)
            if name == "id" and value is not None:
                self.ids.add(value)


def links_of(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


def check_links(client, page: str, html: str) -> list[str]:
    """Every site-internal link of the page is relative and answers (not 404); returns the
    resolved paths."""
    if '<main class="content">' in html:  # the layout's own links are not this page's
        html = html.split('<main class="content">', 1)[1].split("</main>", 1)[0]
    found = links_of(html)
    resolved = []
    for href in found.hrefs:
        if href.startswith("#"):
            assert href[1:] in found.ids or \
                href[1:].replace("%20", " ") in found.ids, (page, href)
            continue
        if urlsplit(href).scheme in ("http", "https", "mailto"):
            continue
        assert not href.startswith("/"), (page, href)
        target = urlsplit(urljoin("http://x" + page, href))
        path = target.path + ("?" + target.query if target.query else "")
        resp = client.get(path)
        assert resp.status_code != 404, (page, href, path)
        resolved.append(target.path)
    return resolved


# -- the build page -----------------------------------------------------------------------------

def test_finished_build_page(bclient, history):
    resp = bclient.get("/builders/runtests/builds/0")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-cache"
    html = text_of(resp)
    assert "<title>Buildbot: runtests Build #0</title>" in html
    assert '<h1>Builder <a href="../../../builders/runtests">runtests</a> Build #0</h1>' in html
    # result word and text
    assert re.search(r'<p class="box result failure"><span class="result-word">FAILURE'
                     r'</span>: Failed test</p>', html)
    # sourcestamp: project, repository, branch, revision linked, got_revision, changes
    assert '<a href="http://frob.example.org/">frob</a>' in html
    assert '<a href="http://example.org/repo">git://example.org/repo.git</a>' in html
    assert '<td class="branch">main</td>' in html
    assert '<a href="http://vcs.example.org/rev/abc123">abc123</a>' in html
    assert '<td class="got-revision">' in html
    assert '<a href="#changes-">1 change</a>' in html and 'id="changes-"' in html
    # slave linked, reason
    assert '<a href="../../../buildslaves/slave1">slave1</a>' in html
    assert "<h2>Reason:</h2>" in html
    # steps in order with their classes; the hidden finished step is left out
    steps = re.findall(r'<div class="box result step (\w+)">\s*(?:<span class="duration">'
                       r'\( ([^)]*) \)</span>)?\s*<a href="([^"]+)" class="step-name">([^<]+)'
                       r'</a>', html)
    assert [(s[0], s[3]) for s in steps] == [("success", "compile"), ("failure", "test")]
    assert steps[0][1] == "1 secs"
    assert steps[0][2] == "../../../builders/runtests/builds/0/steps/compile"
    assert 'href="../../../builders/runtests/builds/0/steps/test/logs/stdio"' in html
    assert "cleanup" not in html.split("<h2>Steps and Logfiles:</h2>")[1].split("</ol>")[0]
    # responsible users and timing
    assert '<span class="user">alice <span class="email">' in html
    assert "<th scope=\"row\">Start</th>" in html and "<th scope=\"row\">End</th>" in html
    # all changes: the shared change block
    assert '<a href="../../../changes/1">Change #1</a>' in html
    assert '<pre class="comments">fix the frobnicator, see #12</pre>' in html
    assert "<li>src/b.c</li>" in html
    check_links(bclient, "/builders/runtests/builds/0", html)


def test_properties_with_sources_truncation_and_dicts(bclient, history):
    html = text_of(bclient.get("/builders/runtests/builds/1"))
    props = html.split("<h2>Build Properties:</h2>")[1].split("</table>")[0]
    assert re.search(r'<td class="name">global_prop</td><td class="value"><span>g</span></td>'
                     r'<td class="source">Global</td>', props)
    assert '<td class="source">Builder</td>' in props
    assert '<td class="name">buildnumber</td><td class="value"><span>1</span></td>' in props
    forced = html.split("<h2>Forced Build Properties:</h2>")[1].split("</table>\n")[0]
    assert "<th scope=\"col\">Label</th>" in forced
    assert '<td class="name">owner</td>' in forced and "bob" in forced
    # the 600-character value is cut at 500 with a note
    assert "x" * 500 + " .. [property value too long]" in forced
    assert "x" * 501 not in forced
    # a dict value is a nested table
    assert '<table class="info nested">' in forced
    assert '<tr><th scope="row">k</th><td>v</td></tr>' in forced
    assert "<p class=\"note\">no responsible users</p>" in html
    assert "Build of most recent revision" in html


def test_running_build_and_negative_numbers(bclient, history):
    html = text_of(bclient.get("/builders/runtests/builds/-1"))
    assert "Build #2" in html and "<h2>Build In Progress:</h2>" in html
    assert re.search(r'Running step <a href="../../../builders/runtests/builds/2/steps/'
                     r'compile">compile</a>; elapsed ', html)
    steps = re.findall(r'<div class="box result step (\w+)">', html)
    assert steps == ["running", "not_started", "not_started"]
    assert "( running )" in html
    assert "<th scope=\"row\">End</th>" not in html
    # -3 is build 0; beyond the first build there is nothing
    assert "Build #0" in text_of(bclient.get("/builders/runtests/builds/-3"))
    assert bclient.get("/builders/runtests/builds/-4").status_code == 404
    # the trailing slash is accepted and links still resolve
    resp = bclient.get("/builders/runtests/builds/-1/")
    assert resp.status_code == 200
    check_links(bclient, "/builders/runtests/builds/-1/", text_of(resp))


def test_unknown_builds_are_404_pages(bclient, history):
    for url in ("/builders/runtests/builds/3", "/builders/nosuch/builds/0",
                "/builders/runtests/builds/99999999999", "/builders/runtests/builds/x",
                "/builders/runtests/builds/0/steps/nosuch",
                "/builders/runtests/builds/0/nosuch"):
        resp = bclient.get(url)
        assert resp.status_code == 404, url
        assert 'class="footer"' in text_of(resp), url


def test_names_with_spaces_and_slashes(bclient, history):
    page = "/builders/odd%20b%2Fuilder/builds/0"
    resp = bclient.get(page)
    assert resp.status_code == 200
    html = text_of(resp)
    assert '<a href="../../../builders/odd%20b%2Fuilder">odd b/uilder</a>' in html
    assert '<a href="../../../buildslaves/slave%202%2Fx">slave 2/x</a>' in html
    step = "../../../builders/odd%20b%2Fuilder/builds/0/steps/list%20it%2Fnow"
    assert f'<a href="{step}" class="step-name">list it/now</a>' in html
    assert f'href="{step}/logs/stdio"' in html
    paths = check_links(bclient, page, html)
    assert "/builders/odd%20b%2Fuilder/builds/0/steps/list%20it%2Fnow/logs/stdio" in paths
    step_page = text_of(bclient.get(page + "/steps/list%20it%2Fnow"))
    assert "<title>Build Step</title>" in step_page
    check_links(bclient, page + "/steps/list%20it%2Fnow", step_page)


def test_steps_listing_is_bare_text(bclient, history):
    resp = bclient.get("/builders/runtests/builds/0/steps")
    assert resp.status_code == 200 and resp.content_type.startswith("text/plain")
    assert bclient.get("/builders/runtests/builds/0/steps/").status_code == 200


# -- the step page ------------------------------------------------------------------------------

def test_step_page_by_name_and_index(bclient, history):
    resp = bclient.get("/builders/runtests/builds/0/steps/test")
    assert resp.status_code == 200
    html = text_of(resp)
    assert "<title>Build Step</title>" in html
    assert "<h2>Finished</h2>" in html
    assert re.search(r'<p class="box result failure"><span class="result-word">FAILURE</span>',
                     html)
    assert '<a href="../../../../../builders/runtests/builds/0/steps/test/logs/stdio">stdio' \
           "</a>" in html
    assert "<th scope=\"row\">Elapsed</th><td>1 secs</td>" in html
    by_index = text_of(bclient.get("/builders/runtests/builds/0/steps/1"))
    assert "FAILURE" in by_index and ">test</a></h1>" in by_index
    last = text_of(bclient.get("/builders/runtests/builds/0/steps/-1/"))
    assert ">cleanup</a></h1>" in last
    check_links(bclient, "/builders/runtests/builds/0/steps/test", html)


def test_step_page_of_running_and_pending_steps(bclient, history):
    html = text_of(bclient.get("/builders/runtests/builds/2/steps/compile"))
    assert "<h2>Not Finished</h2>" in html and "Not finished" in html
    assert "(still being written)" in html
    pending = text_of(bclient.get("/builders/runtests/builds/2/steps/test"))
    assert "<h2>Not Started</h2>" in pending and "- No logs -" in pending


def test_step_statistics_and_urls(bmaster, bclient, history):
    import json

    import sqlalchemy as sa

    from bbweb.db.schema import steps

    # statistics and URLs are set by step implementations; no engine call writes them yet
    with bmaster.db.write() as conn:
        conn.execute(steps.update().where(steps.c.name == "compile").values(
            statistics=json.dumps({"warnings": 3}),
            urls=json.dumps({"report": "http://r.example.org/1", "bad": "javascript:x()"})))
        assert conn.execute(sa.select(sa.func.count()).select_from(steps)).scalar()
    html = text_of(bclient.get("/builders/runtests/builds/0/steps/compile"))
    assert "<h2>Statistics</h2>" in html and "<td>warnings</td><td>3</td>" in html
    assert '<a href="http://r.example.org/1">report</a>' in html
    assert "javascript:" not in html
    build = text_of(bclient.get("/builders/runtests/builds/0"))
    assert '<li class="step-url"><a href="http://r.example.org/1">report</a></li>' in build
    assert '<li class="step-url">bad</li>' in build


# -- hostile strings ----------------------------------------------------------------------------

H1 = "<script>alert(1)</script>"
H2 = '"><img src=x onerror=alert(1)>'
HOSTILE_CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
H1 = '<script>alert(1)</script>'
H2 = '"><img src=x onerror=alert(1)>'
c['slaves'] = [BuildSlave('s1', 'pw')]
f = BuildFactory([ShellCommand(command=['make'], name=H2, description=[H1],
                               descriptionDone=[H1, H2])])
c['builders'] = [BuilderConfig(name=H1, slavenames=['s1'], factory=f)]
c['schedulers'] = [SingleBranchScheduler(name='all', branch=H1, builderNames=[H1]),
                   ForceScheduler(name='force', builderNames=[H1])]
"""


def assert_escaped(page: str, html: str, own_scripts: int = 0) -> None:
    assert "<script>alert" not in html, page
    assert "<img" not in html, page
    assert html.count("<script") == own_scripts, page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, page


def test_hostile_strings_are_escaped_everywhere(make_master):
    master = make_master(HOSTILE_CFG)
    app = master.app()
    client = app.test_client()
    cfg = master.config
    with master.db.write() as conn:
        sync_builders(conn, cfg)
        es.slave_connected(conn, "s1", {}, now=T0)
        changeid = add_change(conn, cfg, ChangeInput(
            author=H1 + " <" + H2 + "@x.org>", comments=H1 + "\n" + H2, files=[H1, H2],
            revision=H2, branch=H1, category=H1, repository=H1, project=H2,
            codebase="", properties={H1: H2, "v": H1}, revlink=H2), now=T0)
    b0 = claim(master, "s1", T0 + 1)
    run_build(master, b0.buildid, {H2: 1}, T0 + 2,
              props={H2: {H1: H2}, "got_revision": H1},
              log=[("h", H1), ("o", H2 + "\x1b[31m" + H1), ("e", H2)])
    force(master, H1, reason=H1, owner=H2, branch=H1, revision=H2, repository=H2,
          project=H1, properties={H1: H2, "long": H1 * 100})
    b1 = claim(master, "s1", T0 + 10)
    with master.db.write() as conn:
        spec = eb.next_step(conn, cfg, b1.buildid, now=T0 + 11)
        eb.append_step_log(conn, cfg, spec["id"], H2, [("o", H1), ("e", H2)])

    root = "/builders/" + segment(H1) + "/builds/"
    step = "/steps/" + segment(H2)
    pages = [root + "0", root + "1", root + "-1/", root + "0" + step, root + "1" + step,
             root + "0" + step + "/logs/stdio", f"/changes/{changeid}"]
    for page in pages:
        resp = client.get(page)
        assert resp.status_code == 200, page
        # the running build's page follows the live stream with bbweb's own script
        running = page in (root + "1", root + "-1/")
        assert_escaped(page, text_of(resp), own_scripts=1 if running else 0)
    live = root + "1" + step + "/logs/" + segment(H2)
    resp = client.get(live)
    assert resp.status_code == 200
    assert_escaped(live, text_of(resp), own_scripts=1)
    for data_url in (root + "0" + step + "/logs/stdio/text",
                     live + "/chunks"):
        resp = client.get(data_url)
        assert resp.status_code == 200
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert not resp.content_type.startswith("text/html")
    app.extensions["bbweb"].db.dispose()


def segment(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


# -- queries do not grow with history -----------------------------------------------------------

def test_query_count_does_not_grow_with_history(make_master):
    from tests.support.querycount import counting
    from tests.web.test_json_queries import CFG as QCFG
    from tests.web.test_json_queries import add_builds

    master = make_master(QCFG)
    app = master.app()
    with master.db.write() as conn:
        sync_builders(conn, master.config)
        es.slave_connected(conn, "s1", {})
        es.slave_connected(conn, "s2", {})
    pages = ["/builders/b/builds/0", "/builders/b/builds/-1", "/builders/b/builds/1",
             "/builders/b/builds/0/steps/test", "/builders/b/builds/-1/steps/compile",
             "/builders/b/builds/0/steps/test/logs/stdio",
             "/builders/b/builds/-1/steps/compile/logs/stdio/text", "/changes/1"]

    def measure() -> dict[str, int]:
        client = app.test_client()
        counts = {}
        for page in pages:
            with counting(app) as statements:
                resp = client.get(page)
                body = resp.get_data()  # streamed pages query while they are read
            assert resp.status_code == 200, (page, body[:300])
            counts[page] = len(statements)
        return counts

    add_builds(master, 3, 0)  # -1 is build 2: forced, like build 14 below
    small = measure()
    add_builds(master, 12, 3)
    large = measure()
    assert large == small
    assert large["/builders/b/builds/0"] <= 12, large
    app.extensions["bbweb"].db.dispose()
