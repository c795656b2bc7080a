"""``/console`` over history made through the engine, on SQLite and
PostgreSQL: the colour of every kind of cell, row order (arrival, never lexical), rows for
forced builds, filters, failure details, escaping, arguments and the query budget."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.changes import ChangeInput, add_change
from bbweb.status.builder import EXCEPTION, WARNINGS
from tests.support.history import claim, force, run
from tests.support.querycount import counting

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Test Project'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('slinux', 'pw'), BuildSlave('swin', 'pw'), BuildSlave('sdocs', 'pw'),
               BuildSlave('slib', 'pw')]
two = BuildFactory([ShellCommand(command=['make'], name='compile'),
                    ShellCommand(command=['make', 'test'], name='test')])
c['builders'] = [
    BuilderConfig(name='linux', slavenames=['slinux'], factory=two, category='core|unix'),
    BuilderConfig(name='windows', slavenames=['swin'], factory=two, category='core'),
    BuilderConfig(name='docs', slavenames=['sdocs'], factory=two),
    BuilderConfig(name='libbuild', slavenames=['slib'], factory=two, category='lib'),
]
c['schedulers'] = [
    AnyBranchScheduler(name='main', builderNames=['linux', 'windows', 'docs'],
                       change_filter=ChangeFilter(codebase='')),
    AnyBranchScheduler(name='lib', builderNames=['libbuild'],
                       change_filter=ChangeFilter(codebase='lib')),
    ForceScheduler(name='force', builderNames=['linux', 'windows', 'docs', 'libbuild']),
]
c['status'] = [WebStatus(http_port=8010, ORDER
                         revlink='http://rev.example.org/r/%s',
                         changecommentlink=(r'#(\\d+)', r'http://bugs.example.org/\\1'))]
"""
T0 = 1_700_000_000.0
HASH_A = "fedcba9876543210fedcba9876543210fedcba98"  # arrives first, sorts last lexically
HASH_B = "0123456789abcdef0123456789abcdef01234567"


def cfg_text(by_time: bool = False) -> str:
    return CFG.replace("ORDER", "order_console_by_time=True," if by_time else "")


def change(master: Any, t: float, **kw: Any) -> int:
    kw.setdefault("author", "alice <alice@example.org>")
    with master.db.write() as conn:
        return add_change(conn, master.config, ChangeInput(**kw), now=t)


def finish(master: Any, buildid: int, result: int, t: float) -> None:
    with master.db.write() as conn:
        eb.finish_build(conn, master.config, buildid, now=t, result=result,
                        text=["oops"] if result == EXCEPTION else ["warnings", "lint"])


def connect_all(master: Any) -> None:
    with master.db.write() as conn:
        sync_builders(conn, master.config)
        for name in ("slinux", "swin", "sdocs", "slib"):
            es.slave_connected(conn, name, {"host": name}, now=T0)


def build_history(master: Any) -> dict[str, int]:
    """c1 "999", c2 "1000", c3 HASH_A, c4 HASH_B on the default codebase (linux, windows,
    docs), c5 "999" on codebase lib (libbuild only), then a forced linux build.

    linux:   c1 success, c2 failure (new), c3 failure again, c4 exception, forced success
    windows: c1 failure (new), c2 failure again, c3 warnings, c4 running
    docs:    never builds (requests pending)
    libbuild: c5 success
    """
    connect_all(master)
    ids = {}
    t = T0
    ids["c1"] = change(master, t + 1, revision="999", comments="first\nsecond line",
                       repository="git://example.org/main.git")
    b = claim(master, "slinux", t + 2)
    run(master, b.buildid, {}, t + 3)
    b = claim(master, "swin", t + 4)
    run(master, b.buildid, {"test": 1}, t + 5)
    ids["c2"] = change(master, t + 10, revision="1000", comments="fixes #42",
                       author="bob <bob@example.org>", repository="git://example.org/main.git")
    b = claim(master, "slinux", t + 11)
    run(master, b.buildid, {"test": 1}, t + 12)
    b = claim(master, "swin", t + 13)
    run(master, b.buildid, {"compile": 1}, t + 14)
    ids["c3"] = change(master, t + 20, revision=HASH_A, comments="third",
                       repository="git://example.org/main.git")
    b = claim(master, "slinux", t + 21)
    run(master, b.buildid, {"compile": 1}, t + 22)
    b = claim(master, "swin", t + 23)
    finish(master, b.buildid, WARNINGS, t + 24)
    ids["c4"] = change(master, t + 30, revision=HASH_B, comments="fourth",
                       repository="git://example.org/main.git")
    b = claim(master, "slinux", t + 31)
    finish(master, b.buildid, EXCEPTION, t + 32)
    claim(master, "swin", t + 33)  # running
    ids["c5"] = change(master, t + 40, revision="999", comments="lib change",
                       codebase="lib", repository="git://example.org/lib.git")
    b = claim(master, "slib", t + 41)
    run(master, b.buildid, {}, t + 42)
    force(master, "linux", reason="try again", owner="carol")
    b = claim(master, "slinux", t + 50)
    run(master, b.buildid, {}, t + 51)
    return ids


@pytest.fixture
def cmaster(make_master):
    return make_master(cfg_text())


@pytest.fixture
def capp(cmaster):
    application = cmaster.app()
    yield application
    application.extensions["bbweb"].db.dispose()


@pytest.fixture
def web(capp):
    return capp.test_client()


@pytest.fixture
def history(cmaster, web) -> dict[str, int]:
    return build_history(cmaster)


def page(client: Any, url: str, status: int = 200) -> str:
    resp = client.get(url)
    assert resp.status_code == status, (url, resp.status_code, resp.data[:600])
    assert resp.content_type == "text/html; charset=utf-8"
    return resp.get_data(as_text=True)


def row_blocks(html: str) -> list[str]:
    """The page's rows (one ``<tbody>`` per change or changeless build), top to bottom."""
    return re.findall(r'<tbody class="[^"]*">(.*?)</tbody>', html, re.S)


def row_numbers(html: str) -> list[str]:
    """Each row's change number, or ``forced``/``scheduled``."""
    out = []
    for block in row_blocks(html):
        m = re.search(r'class="change-link"[^>]*>#(\d+)</a>', block)
        if m:
            out.append(m.group(1))
        else:
            out.append("forced" if "Forced build" in block else "scheduled")
    return out


def cells(block: str) -> list[str]:
    """Cell classes of a row's box line, in column order."""
    line = block.split('<tr class="comments">')[0]
    return re.findall(r'<td class="cbox ([\w-]+)">', line)


def row_of(html: str, changeid: int) -> str:
    for block in row_blocks(html):
        if f'>#{changeid}</a>' in block:
            return block
    raise AssertionError(f"no row for change {changeid}")


# -- colours -----------------------------------------------------------------------------------

def test_each_history_gives_its_colour(history, web):
    html = page(web, "/console")
    # columns: core (linux, windows), default (docs), lib (libbuild); natural order within
    header = re.search(r'<tr class="categories">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r'colspan="(\d)" scope="colgroup">([^<]+)<', header) == [
        ("2", "core"), ("1", "default"), ("1", "lib")]
    assert cells(row_of(html, history["c1"])) == ["success", "failure", "notstarted",
                                                  "notinbuilder"]
    assert cells(row_of(html, history["c2"])) == ["failure", "failure-again", "notstarted",
                                                  "notinbuilder"]
    assert cells(row_of(html, history["c3"])) == ["failure-again", "warnings", "notstarted",
                                                  "notinbuilder"]
    assert cells(row_of(html, history["c4"])) == ["exception", "running", "notstarted",
                                                  "notinbuilder"]
    # same revision string "999" as c1, another codebase: only libbuild built it
    assert cells(row_of(html, history["c5"])) == ["notinbuilder", "notinbuilder",
                                                  "notinbuilder", "success"]


def test_boxes_link_to_their_builds_with_a_tooltip(history, web):
    html = page(web, "/console")
    c2 = row_of(html, history["c2"])
    assert '<a href="./builders/linux/builds/1" title="linux #1: Failed, failed test">' in c2
    c4 = row_of(html, history["c4"])
    # running: the ETA (its warnings build took no time, so any moment now)
    assert re.search(r'href="./builders/windows/builds/3" title="windows #3: running, '
                     r'ETA: any moment now"', c4)
    # not built yet: a link to the builder; not in builder: no link
    assert ('<td class="cbox notstarted"><a href="./builders/docs" '
            'title="docs: no data, not built yet"></a></td>') in c4
    assert '<td class="cbox notinbuilder"><span title="libbuild: not built here"></span>' in c4


def test_builder_status_row(history, cmaster, web):
    with cmaster.db.write() as conn:
        es.mark_disconnected(conn, es.slave_id(conn, "sdocs"), "sdocs")
    html = page(web, "/console")
    status = re.search(r'<tr class="builder-status">(.*?)</tr>', html, re.S).group(1)
    # linux: the forced build passed; windows: last finished was warnings (one runs);
    # docs: offline; libbuild: success
    assert re.findall(r'<td class="cbox ([\w-]+)"><a href="./builders/(\w+)" title="\2: (\w+)">',
                      status) == [("success", "linux", "Passed"),
                                  ("warnings", "windows", "Warnings"),
                                  ("offline", "docs", "Offline"),
                                  ("success", "libbuild", "Passed")]


def test_failure_details_only_under_new_failures(history, web):
    html = page(web, "/console")
    c2 = row_of(html, history["c2"])
    details = re.search(r'<tr class="details">(.*?)</tr>', c2, re.S).group(1)
    # linux failed first here; windows failed again (not listed)
    assert "linux</a>: test failed" in details and "windows" not in details
    assert ('<a href="./builders/linux/builds/1/steps/test/logs/stdio">stdio</a>'
            in details)
    c1 = row_of(html, history["c1"])
    assert "windows</a>: test failed" in c1
    for key in ("c3", "c4", "c5"):
        assert '<tr class="details">' not in row_of(html, history[key])


# -- rows and their order ------------------------------------------------------------------------

def test_rows_in_arrival_order_not_lexical_and_forced_build_row(history, web):
    html = page(web, "/console")
    ids = history
    # newest first: the forced build, c5, c4 (HASH_B), c3 (HASH_A), c2 ("1000"), c1 ("999")
    assert row_numbers(html) == ["forced", str(ids["c5"]), str(ids["c4"]), str(ids["c3"]),
                                 str(ids["c2"]), str(ids["c1"])]
    forced = row_blocks(html)[0]
    assert "<b>Forced build</b> (no change)" in forced and "unknown" not in forced
    assert "A build was forced by" in forced and "carol" in forced
    assert cells(forced) == ["success", "notinbuilder", "notinbuilder", "notinbuilder"]


def test_forced_build_row_sits_where_it_was_forced(cmaster, web):
    connect_all(cmaster)
    first = change(cmaster, T0 + 1, revision="r1")
    force(cmaster, "docs", reason="between", owner="dan")
    second = change(cmaster, T0 + 3, revision="r2")
    b = claim(cmaster, "sdocs", T0 + 4)  # the oldest docs request: r1's
    run(cmaster, b.buildid, {}, T0 + 5)
    html = page(web, "/console")
    assert row_numbers(html) == [str(second), "forced", str(first)]
    forced = row_blocks(html)[1]
    assert cells(forced) == ["notinbuilder", "notinbuilder", "notstarted", "notinbuilder"]


def test_timed_build_without_change_gets_a_scheduled_row(make_master):
    from bbweb.engine.schedulers import tick

    text = cfg_text().replace(
        "    ForceScheduler(", "    Periodic(name='hourly', builderNames=['docs'], "
                             "periodicBuildTimer=3600),\n    ForceScheduler(")
    master = make_master(text)
    app = master.app()
    try:
        connect_all(master)
        first = change(master, T0 + 1, revision="r1")
        with master.db.write() as conn:
            assert tick(conn, master.config, now=T0 + 2)
        html = page(app.test_client(), "/console")
        assert row_numbers(html) == ["scheduled", str(first)]
        timed = row_blocks(html)[0]
        assert "<b>Scheduled build</b> (no change)" in timed
        assert "The Periodic scheduler named &#39;hourly&#39; triggered this build" in timed
        # requested of docs only: not built yet there, not built at all elsewhere
        assert cells(timed) == ["notinbuilder", "notinbuilder", "notstarted", "notinbuilder"]
    finally:
        app.extensions["bbweb"].db.dispose()


def test_order_console_by_time_sorts_by_commit_time(make_master):
    master = make_master(cfg_text(by_time=True))
    app = master.app()
    try:
        connect_all(master)
        late = change(master, T0 + 10, revision="aaa", when=T0 + 500)
        early = change(master, T0 + 20, revision="bbb", when=T0 + 100)
        html = page(app.test_client(), "/console")
        assert row_numbers(html) == [str(late), str(early)]
        assert "by commit time" in html
    finally:
        app.extensions["bbweb"].db.dispose()


def test_arrival_order_ignores_commit_time(cmaster, web):
    connect_all(cmaster)
    late = change(cmaster, T0 + 10, revision="aaa", when=T0 + 500)
    early = change(cmaster, T0 + 20, revision="bbb", when=T0 + 100)
    html = page(web, "/console")
    assert row_numbers(html) == [str(early), str(late)]
    assert "in the order they arrived" in html


def test_empty_console(cmaster, web):
    html = page(web, "/console")
    assert "No revisions available." in html


# -- decorations and escaping -------------------------------------------------------------------

def test_revlink_changecommentlink_and_author(history, web):
    html = page(web, "/console")
    c2 = row_of(html, history["c2"])
    assert '<a href="http://rev.example.org/r/1000">1000</a>' in c2
    assert '<a href="http://bugs.example.org/42">#42</a>' in c2
    assert '<span class="user">bob <span class="email">' in c2
    c3 = row_of(html, history["c3"])
    # a long revision is shortened, the full one in the tooltip
    assert f'title="Revision {HASH_A}"' in c3 and HASH_A[:12] + "..." in c3
    assert f'href="./changes/{history["c3"]}"' in c3


HOSTILE_CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = '<i>T</i>'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('s1', 'pw')]
f = BuildFactory([ShellCommand(command=['make'], name='comp<ile>')])
c['builders'] = [BuilderConfig(name='odd <b>&"x', slavenames=['s1'], factory=f,
                               category='<cat>')]
c['schedulers'] = [AnyBranchScheduler(name='main', builderNames=['odd <b>&"x'])]
"""


def test_hostile_strings_are_escaped(make_master):
    master = make_master(HOSTILE_CFG)
    app = master.app()
    try:
        with master.db.write() as conn:
            sync_builders(conn, master.config)
            es.slave_connected(conn, "s1", {}, now=T0)
        change(master, T0, author='<script>alert(1)</script>', revision='"><script>x',
               comments="<img src=x onerror=alert(2)>", branch="<br>")
        b = claim(master, "s1", T0 + 1)
        run(master, b.buildid, {"comp<ile>": 1}, T0 + 2)
        html = page(app.test_client(), "/console?name=<script>alert(3)</script>&branch=<br>")
        assert "<script>" not in html and "<img" not in html and "<br>" not in html
        assert 'name="name" value="&lt;script&gt;alert(3)&lt;/script&gt;"' in html
        html = page(app.test_client(), "/console?branch=%3Cbr%3E")
        assert "<script>" not in html and "<img" not in html and "<i>T</i>" not in html
        assert "<b>Branch:</b> &lt;br&gt;" in html
        assert '<td class="author" title="Tue 14 Nov 2023' in html
        assert ">&lt;script&gt;alert(1)&lt;/script&gt;</td>" in html
        assert "&#34;&gt;&lt;script&gt;x" in html
        assert "&lt;img src=x onerror=alert(2)&gt;" in html
        assert 'title="odd &lt;b&gt;&amp;&#34;x #0: Failed, failed comp&lt;ile&gt;"' in html
        assert 'href="./builders/odd%20%3Cb%3E%26%22x/builds/0"' in html
        assert '/steps/comp%3Cile%3E/logs/stdio">stdio</a>' in html
    finally:
        app.extensions["bbweb"].db.dispose()


# -- filters --------------------------------------------------------------------------------------

def test_every_filter_argument(cmaster, web):
    connect_all(cmaster)
    ids = {
        "plain": change(cmaster, T0 + 1, revision="p1"),
        "branch": change(cmaster, T0 + 2, revision="b1", branch="feature"),
        "repo": change(cmaster, T0 + 3, revision="r1", repository="git://other/repo"),
        "project": change(cmaster, T0 + 4, revision="j1", project="frob"),
        "codebase": change(cmaster, T0 + 5, revision="k1", codebase="lib"),
        "author": change(cmaster, T0 + 6, revision="a1", author="Zed Z <zed@example.org>"),
    }

    def shown(url: str) -> set[str]:
        return {k for k, v in ids.items() if str(v) in row_numbers(page(web, url))}

    assert shown("/console") == set(ids)
    assert shown("/console?branch=feature") == {"branch"}
    assert shown("/console?repository=git://other/repo") == {"repo"}
    assert shown("/console?project=frob") == {"project"}
    assert shown("/console?codebase=lib") == {"codebase"}
    # the whole author, the name in it, or the address; several names add up
    assert shown("/console?name=Zed+Z+%3Czed@example.org%3E") == {"author"}
    assert shown("/console?name=Zed+Z") == {"author"}
    assert shown("/console?name=zed@example.org&name=nobody") == {"author"}
    assert shown("/console?name=Zed%25") == set()  # LIKE wildcards are literal
    assert 'value="Zed Z"' in page(web, "/console?name=Zed+Z")
    # filters combine; the filter bar says what is active
    html = page(web, "/console?branch=feature&project=frob")
    assert row_numbers(html) == []
    assert "<b>Branch:</b> feature" in html and "<b>Project:</b> frob" in html


def test_builder_and_category_filters_choose_columns(history, web):
    def columns(url: str) -> list[str]:
        html = page(web, url)
        status = re.search(r'<tr class="builder-status">(.*?)</tr>', html, re.S).group(1)
        return re.findall(r'href="./builders/([^"]+)" title=', status)

    assert columns("/console") == ["linux", "windows", "docs", "libbuild"]
    assert columns("/console?builder=windows&builder=linux") == ["linux", "windows"]
    assert columns("/console?category=lib") == ["libbuild"]
    assert columns("/console?category=core&category=lib") == ["windows", "libbuild"]
    assert columns("/console?category=core|unix") == ["linux"]
    html = page(web, "/console?builder=libbuild")
    assert '<tr class="categories">' not in html  # one category: no header row
    page(web, "/console?builder=nope", status=404)


def test_personalized_form_keeps_other_arguments(history, web):
    html = page(web, "/console?branch=x&revs=5&name=old")
    form = re.search(r'<form class="personalize"(.*?)</form>', html, re.S).group(1)
    assert 'method="get" action="./console"' in form
    assert '<input type="hidden" name="branch" value="x">' in form
    assert '<input type="hidden" name="revs" value="5">' in form
    assert 'name="name" value="old"' in form and 'type="hidden" name="name"' not in form
    assert "<script" not in html  # no JavaScript needed


def test_name_filter_hides_forced_rows(history, web):
    html = page(web, "/console?name=bob")
    assert row_numbers(html) == [str(history["c2"])]


# -- arguments and headers -----------------------------------------------------------------------

def test_revs_limits_rows(history, web):
    # revs counts rows: the forced build's row is one of them
    assert row_numbers(page(web, "/console?revs=3")) == ["forced", str(history["c5"]),
                                                         str(history["c4"])]
    html = page(web, "/console?revs=2")
    assert row_numbers(html) == ["forced", str(history["c5"])]
    assert 'href="./console?revs=4">Show more changes</a>' in html
    assert "Show more" not in page(web, "/console")  # fewer than 40 changes exist
    html = page(web, "/console?revs=100000")  # lowered to the cap
    assert "At most 200 changes" in html


@pytest.mark.parametrize("query", ["revs=abc", "revs=0", "revs=-3", "revs=1.5", "revs=",
                                   "reload=soon", "reload=-1", "revs=99999999999999"])
def test_bad_integers_are_400(cmaster, web, query):
    html = page(web, "/console?" + query, status=400)
    assert "must be an integer" in html


def test_no_cache_and_reload(cmaster, web):
    resp = web.get("/console")
    assert resp.headers["Cache-Control"] == "no-cache"
    html = resp.get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="60">' in html
    assert "<title>BuildBot: Test Project</title>" in html
    assert "http-equiv" not in page(web, "/console?reload=0")
    assert '<meta http-equiv="refresh" content="15">' in page(web, "/console?reload=3")
    assert '<meta http-equiv="refresh" content="90">' in page(web, "/console?reload=90")
    assert web.get("/console/").status_code == 404
    assert web.post("/console").status_code == 200


def test_nav_links_to_the_console(cmaster, web):
    assert '<a href="./console">Console</a>' in page(web, "/builders")


# -- queries do not grow with history ------------------------------------------------------------

def test_statement_count_does_not_grow_with_history(cmaster, capp, web):
    connect_all(cmaster)
    t = T0

    def add(n: int) -> None:
        nonlocal t
        for i in range(n):
            change(cmaster, t, revision=f"rev{t}")
            for slave, rc in (("slinux", {}), ("swin", {"test": 1 if i % 2 else 0})):
                b = claim(cmaster, slave, t + 1)
                run(cmaster, b.buildid, rc, t + 1)
            t += 10
        force(cmaster, "linux", reason="again")
        b = claim(cmaster, "slinux", t)
        run(cmaster, b.buildid, {"test": 1}, t)
        t += 10

    def measure() -> int:
        with counting(capp) as statements:
            resp = web.get("/console?revs=3")
        assert resp.status_code == 200
        return len(statements)

    add(4)
    small = measure()
    add(12)
    large = measure()
    assert large == small
    assert large <= 16, large
