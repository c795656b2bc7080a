"""``/buildslaves`` and ``/buildslaves/X`` over history built through the
engine, on SQLite and PostgreSQL. The scenario is the builders pages' one."""

from __future__ import annotations

import re

import pytest

from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.force import force_build
from bbweb.status.naming import natural_key
from bbweb.web.buildslaves import ACCESS_SCHEMES
from bbweb.web.helpers import WEB_SCHEMES, safe_href
from tests.web.test_builders_pages import CFG, build_scenario, page, rows_of, set_paused


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


def cells(row: str) -> list[str]:
    return [c.strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


def test_buildslaves_table(scenario, web):
    html = page(web, "/buildslaves")
    assert "<title>BuildSlaves</title>" in html
    rows = rows_of(html, "buildslaves")
    names = [re.search(r'<b><a href="([^"]+)">([^<]+)</a></b>', r).groups() for r in rows]
    # natural order: slave10 after slave3
    assert names == [("./buildslaves/slave1", "slave1"), ("./buildslaves/slave2", "slave2"),
                     ("./buildslaves/slave3", "slave3"), ("./buildslaves/slave10", "slave10")]
    s1, s2, s3, s10 = (cells(r) for r in rows)
    assert s1[1] == '<a href="./builders/runtests">runtests</a> <a href="./builders/docs">docs</a>'
    assert s3[1] == '<a href="./builders/odd%20name%2Fx">odd name/x</a>'
    assert (s1[2], s2[2]) == ("0.8.9", "-")
    assert s1[3].startswith("Admin &lt;admin<span") and s2[3] == "-"
    assert re.fullmatch(r"[\w ]+ago <small>\(<time>\d{4}-\w{3}-\d\d \d\d:\d\d:\d\d</time>\)"
                        r"</small>", s1[4])
    assert s10[4] == "" and s10[5] == ""
    assert s2[5] == ""  # not connected: no "connected since"
    assert s1[5] != "" and s3[5] != ""
    status = [re.search(r'<td class="box (\w+)">([^<]*)</td>', r).groups() for r in rows]
    assert status == [("building", "Running 1 build(s)"), ("offline", "Not connected"),
                      ("paused", "Paused"), ("offline", "Not connected")]
    assert '<th scope="col">Builders</th>' in html
    # no invented connection counts
    assert "Connects/Hour</th>" not in html


def test_buildslaves_no_builders_and_trailing_slash(scenario, web):
    html = page(web, "/buildslaves?no_builders=1")
    assert '<th scope="col">Builders</th>' not in html
    assert 'href="./builders/runtests"' not in html
    html = page(web, "/buildslaves/")
    assert 'href="../buildslaves/slave10"' in html and 'href="../builders/docs"' in html


def test_idle_slave(site_master, scenario, web):
    set_paused(site_master, "slave3", False)
    html = page(web, "/buildslaves")
    assert '<td class="box idle">Idle</td>' in html
    assert "<p class=\"box idle\">Connected since" in page(web, "/buildslaves/slave3")


def test_buildslave_page(scenario, web):
    html = page(web, "/buildslaves/slave1")
    assert "<title>Buildbot: slave1</title>" in html
    assert "<h1>Buildslave: slave1</h1>" in html
    current = html.split("<h2>Currently building:</h2>")[1].split("</ul>")[0]
    assert '<a href="../builders/runtests">runtests</a> ' \
           '<a href="../builders/runtests/builds/2">#2</a> - running compile' in current
    assert '<span class="box result-cell running">running</span>' in current
    # finished builds of this slave, newest finish first, with builder column
    rows = rows_of(html, "buildtable")
    found = [re.search(r'builders/(\w+)/builds/\d+">(#\d+)</a>', r).groups() for r in rows]
    assert found == [("docs", "#0"), ("runtests", "#0")]
    assert '<th scope="col">Builder</th>' in html
    assert '<a href="ssh://host1.example.org">Click to Access Slave</a>' in html
    assert "<h2>Administrator</h2>" in html
    assert "<p>Buildbot-Slave 0.8.9</p>" in html
    assert '<pre class="host">host1.example.org</pre>' in html
    info = [re.search(r'<th scope="row">([^<]+)</th>', r).group(1)
            for r in rows_of(html, "slaveinfo")]
    assert info == ["access_uri", "admin", "host", "version"]
    assert '<p class="box building">Connected since <time>' in html
    assert "Last heard from" in html


def test_buildslave_disconnected_and_unknown(scenario, web):
    html = page(web, "/buildslaves/slave2")
    assert "No current builds" in html
    assert '<p class="box offline">Not currently connected; last heard from' in html
    rows = rows_of(html, "buildtable")
    assert len(rows) == 1 and "runtests/builds/1" in rows[0]
    assert "Click to Access Slave" not in html
    html = page(web, "/buildslaves/slave10")
    assert "Not currently connected; never connected." in html
    assert "No recent builds" in html
    html = page(web, "/buildslaves/nope", status=404)
    assert "No such slave &#39;nope&#39;" in html and '<a href="../" class="home">' in html
    html = page(web, "/buildslaves/slave1/")
    assert "<h1>Buildslave: slave1</h1>" in html and 'href="../../default.css"' in html


def test_buildslave_numbuilds_is_exact(site_master, web):
    """0.8 showed numbuilds + 1 builds; the default is 10 and exactly that many show."""
    cfg = site_master.config
    with site_master.db.write() as conn:
        sync_builders(conn, cfg)
        es.slave_connected(conn, "slave3", {"host": "h3"})
    for i in range(13):
        with site_master.db.write() as conn:
            force_build(conn, cfg, ["odd name/x"], scheduler="force", reason=f"r{i}")
            claimed = eb.claim_build_request(conn, cfg, "slave3", es.slave_id(conn, "slave3"),
                                             now=1_700_000_000.0 + i * 10)
            while (spec := eb.next_step(conn, cfg, claimed.buildid)) is not None:
                eb.finish_step(conn, cfg, spec["id"], i % 2)

    def shown(url: str) -> list[str]:
        return re.findall(r'/builds/(\d+)">#\d+</a>', page(web, url))

    assert shown("/buildslaves/slave3") == [str(n) for n in range(12, 2, -1)]
    assert shown("/buildslaves/slave3?numbuilds=3") == ["12", "11", "10"]
    assert shown("/buildslaves/slave3?numbuilds=0") == []
    assert len(shown("/buildslaves/slave3?numbuilds=nonsense")) == 10
    html = page(web, "/buildslaves/slave3?numbuilds=2")
    assert "failure" in html and "success" in html


def test_link_helpers():
    assert sorted(["slave10", "slave2", "Slave1", "a"], key=natural_key) == [
        "a", "Slave1", "slave2", "slave10"]
    assert safe_href("ssh://h", ACCESS_SCHEMES) == "ssh://h"
    assert safe_href("vnc://h:5900", ACCESS_SCHEMES) == "vnc://h:5900"
    for bad in ["javascript:alert(1)", " JavaScript:alert(1)", "java\tscript:alert(1)",
                "\x01javascript:alert(1)", "data:text/html,x", "vbscript:x"]:
        assert safe_href(bad, ACCESS_SCHEMES) is None, bad
        assert safe_href(bad, WEB_SCHEMES) is None, bad
    assert safe_href("ssh://h", WEB_SCHEMES) is None
    assert safe_href("http://x/y", WEB_SCHEMES) == "http://x/y"
    assert safe_href(None, WEB_SCHEMES) is None and safe_href("", WEB_SCHEMES) is None
