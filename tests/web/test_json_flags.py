"""``/json`` flags, ``select``, errors, headers and help pages."""

from __future__ import annotations

import email.utils
import json
import re
import time
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from tests.web.test_json_api import CFG, T0, build_scenario, claim, get, run


@pytest.fixture
def c(make_master):
    """A client on the scenario of test_json_api (builds, slaves, pending requests)."""
    master = make_master(CFG)
    app = master.app()
    build_scenario(master)
    yield app.test_client()
    app.extensions["bbweb"].db.dispose()


# -- headers and formatting ---------------------------------------------------------------------

def test_headers(c):
    resp = c.get("/json/project")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Pragma"] == "no-cache"
    expires = email.utils.parsedate_to_datetime(resp.headers["Expires"]).timestamp()
    assert abs(expires - (time.time() + 60)) < 5
    # as in 0.8, the document is offered as a download unless as_text asks to show it
    assert resp.headers["Content-Disposition"] == 'attachment; filename="project.json"'
    assert c.get("/json").headers["Content-Disposition"] == \
        'attachment; filename="buildbot.json"'
    assert c.get("/json/builders/runtests/builds/0").headers["Content-Disposition"] == \
        'attachment; filename="builders_runtests_builds_0.json"'
    assert "Content-Disposition" not in c.get("/json/project?as_text=1").headers


def test_trailing_slash_is_the_same(c):
    for path in ("/json", "/json/builders", "/json/builders/runtests/builds/0/steps"):
        assert c.get(path + "/").data == c.get(path).data


def test_only_get_and_head(c):
    assert c.post("/json").status_code == 405
    assert c.post("/json/builders").status_code == 405
    head = c.head("/json/builders")
    assert head.status_code == 200 and head.data == b""


def test_compact_is_default_and_keys_are_sorted(c):
    body = c.get("/json/builders/runtests").data.decode()
    data = json.loads(body)
    assert body == json.dumps(data, sort_keys=True, separators=(",", ":"))
    pretty = c.get("/json/builders/runtests?compact=0").data.decode()
    assert pretty == json.dumps(data, sort_keys=True, indent=2)
    assert c.get("/json/builders/runtests?compact=FALSE").data.decode() == pretty
    # anything but 1/true/0/false means "default"
    assert c.get("/json/builders/runtests?compact=maybe").data.decode() == body


def test_as_text(c):
    resp = c.get("/json/builders/lonely?as_text=1")
    assert resp.headers["Content-Type"].startswith("text/plain")
    body = resp.data.decode()
    assert body.startswith("{\n  ")  # indented by default
    # filtered by default: null category and empty lists are gone
    assert json.loads(body) == {"basedir": "lonely", "pendingBuilds": 1,
                                "schedulers": ["force"], "slaves": ["slave3"],
                                "state": "offline"}
    unfiltered = json.loads(c.get("/json/builders/lonely?as_text=true&filter=0").data)
    assert unfiltered["category"] is None and unfiltered["currentBuilds"] == []
    compact = c.get("/json/builders/lonely?as_text=1&compact=1").data.decode()
    assert "\n" not in compact and " " not in compact


def test_filter_keeps_zero(c):
    b = get(c, "/json/builders/docs/builds/0?filter=1")
    assert b["number"] == 0 and b["results"] == 0
    assert "eta" not in b and "currentStep" not in b and b["blame"]
    step = b["steps"][0]
    assert step["step_number"] == 0 and step["results"] == [0, None]
    assert "hidden" not in step and "statistics" not in step and "urls" not in step
    assert ["buildnumber", 0, "Build"] in b["properties"]
    slaves = get(c, "/json/slaves?filter=1")
    assert slaves["slave3"] == {"name": "slave3"}  # everything else empty or false
    assert get(c, "/json/builders/docs/pendingBuilds?filter=1") is None


def test_callback(c):
    resp = c.get("/json/project?callback=bb.show_1")
    assert resp.headers["Content-Type"] == "application/javascript"
    body = resp.data.decode()
    assert body.startswith("bb.show_1(") and body.endswith(");")
    assert json.loads(body[len("bb.show_1("):-2])["title"] == "Test Project"
    for bad in ("alert(1)", "1abc", "a b", "a-b", "", "cb\n", "caf\u00e9"):
        resp = c.get("/json/project", query_string={"callback": bad})
        assert resp.headers["Content-Type"] == "application/json"
        assert json.loads(resp.data)["title"] == "Test Project"


def test_bad_integer_arguments_are_400(c):
    for url in ("/json/builders/runtests/builds/_all?max=abc",
                "/json/slaves?numbuilds=x", "/json/slaves/slave1?numbuilds=1.5"):
        resp = c.get(url)
        assert resp.status_code == 400, url
        assert resp.headers["Content-Type"] == "application/json"
        doc = json.loads(resp.data)
        assert doc["error"] == "Bad argument" and doc["message"]
    assert "max" in json.loads(c.get("/json/builders/runtests/builds/_all?max=abc").data)[
        "message"]
    # negative means none; more than a page's worth is a page's worth
    assert get(c, "/json/builders/runtests/builds/_all?max=-3") == {}
    assert get(c, "/json/builders/runtests/builds/_all?max=100000") == get(
        c, "/json/builders/runtests/builds/_all?max=1000")


MISSING = [
    "/json/nosuch", "/json/builders/nosuch", "/json/builders/runtests/builds/7",
    "/json/builders/runtests/builds/abc", "/json/builders/runtests/builds/1.0",
    "/json/builders/runtests/builds/99999999999999999999",
    "/json/builders/runtests/builds/-99999999999999999999",
    "/json/builders/runtests/builds/_all/_all", "/json/builders/runtests/builds/0/nosuch",
    "/json/builders/runtests/builds/0/steps/9", "/json/builders/runtests/builds/0/steps/x",
    "/json/builders/runtests/builds/0/source_stamp/changes/99999999999",
    "/json/builders/runtests/builds/0/source_stamp/changes/abc",
    "/json/slaves/nosuch", "/json/builders/runtests/slaves/nosuch", "/json/project/x",
    "/json/builders/nosuch/help", "/json/builders/runtests/builds/0/steps/0/logs",
]


def test_unknown_resources_are_404(c):
    for path in MISSING:
        resp = c.get(path)
        assert resp.status_code == 404, path
        doc = json.loads(resp.data)
        assert doc["error"] == "Not available" and doc["message"]


def test_404_message_names_the_missing_part(c):
    doc = json.loads(c.get("/json/builders/nosuch/builds").data)
    assert "'nosuch'" in doc["message"] and "/json/builders" in doc["message"]


# -- select -------------------------------------------------------------------------------------

def test_select_relative_builds(c):
    doc = get(c, "/json/builders/runtests/builds?select=-1&select=-2")
    assert sorted(doc) == ["-1", "-2"]
    assert doc["-1"]["number"] == 2 and doc["-2"]["number"] == 1
    assert doc["-2"] == get(c, "/json/builders/runtests/builds/1")


def test_select_unknown_path(c):
    doc = get(c, "/json/builders/runtests/builds?select=-1&select=-9&select=x/y")
    assert doc["-9"] == {"error": "Not available"}
    assert doc["x"] == {"error": "Not available"}
    assert doc["-1"]["number"] == 2
    assert get(c, "/json?select=help") == {"help": {"error": "Not available"}}


def test_select_empty_merges_own_document(c):
    doc = get(c, "/json/builders/runtests?select=&select=slaves")
    own = get(c, "/json/builders/runtests")
    assert {k: v for k, v in doc.items() if k != "slaves"} == {
        k: v for k, v in own.items() if k != "slaves"}
    assert sorted(doc["slaves"]) == ["slave1", "slave2"]
    assert doc["slaves"]["slave1"] == get(c, "/json/slaves/slave1")
    # the query order does not matter
    assert get(c, "/json/builders/runtests?select=slaves&select=") == doc


def test_select_nested_from_root(c):
    doc = get(c, "/json?select=slaves/slave1/&select=project"
                 "&select=builders/runtests/builds/0&select=builders/runtests/builds/1/steps/0")
    assert sorted(doc) == ["builders", "project", "slaves"]
    assert doc["slaves"] == {"slave1": get(c, "/json/slaves/slave1")}
    assert doc["project"]["title"] == "Test Project"
    builds = doc["builders"]["runtests"]["builds"]
    assert builds["0"] == get(c, "/json/builders/runtests/builds/0")
    assert builds["1"] == {"steps": {"0": get(c, "/json/builders/runtests/builds/1/steps/0")}}


def test_select_shorter_path_does_not_erase_longer(c):
    doc = get(c, "/json?select=builders&select=builders/runtests/builds/-1")
    assert doc["builders"]["runtests"]["state"] == "building"
    assert doc["builders"]["runtests"]["builds"]["-1"]["number"] == 2
    assert doc["builders"]["docs"]["state"] == "idle"


def test_select_list_document(c):
    doc = get(c, "/json/builders/runtests?select=pendingBuilds")
    assert doc["pendingBuilds"] == get(c, "/json/builders/runtests/pendingBuilds")


def test_select_with_filter_and_as_text(c):
    doc = json.loads(c.get("/json/builders/docs/builds?select=0&as_text=1").data)
    assert doc["0"]["number"] == 0 and doc["0"]["results"] == 0 and "eta" not in doc["0"]


# -- names with special characters ------------------------------------------------------------

ODD_CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['buildbotURL'] = 'http://bb.example.org/base'
c['slaves'] = [BuildSlave('s1', 'pw')]
f = BuildFactory([ShellCommand(command=['true'], name='step one')])
c['builders'] = [BuilderConfig(name='<script>alert(1)</script>', slavenames=['s1'],
                               factory=f),
                 BuilderConfig(name='a/b c', slavenames=['s1'], factory=f)]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['a/b c'])]
"""


@pytest.fixture
def odd(make_master):
    from bbweb.engine import slaves as es
    from bbweb.engine.builders import sync_builders
    from bbweb.engine.force import force_build

    m = make_master(ODD_CFG, name="odd")
    with m.db.write() as conn:
        sync_builders(conn, m.config)
        es.slave_connected(conn, "s1", {}, now=T0)
        force_build(conn, m.config, ["a/b c"], scheduler="force")
    claimed = claim(m, "s1", T0 + 1)
    run(m, claimed.buildid, {}, T0 + 2)
    app = m.app()
    yield app.test_client()
    app.extensions["bbweb"].db.dispose()


def test_encoded_slash_in_names(odd):
    b = get(odd, "/json/builders/a%2Fb%20c/builds/0")
    assert b["builderName"] == "a/b c"
    assert b["logs"] == [["stdio", "http://bb.example.org/base/builders/a%2Fb%20c/builds/0"
                                   "/steps/step%20one/logs/stdio"]]
    doc = get(odd, "/json/builders?select=a%252Fb%20c/builds/-1")
    assert doc["a/b c"]["builds"]["-1"]["number"] == 0
    assert get(odd, "/json/builders/a%2Fb%20c/builds/0/steps/step%20one")["name"] == "step one"


# -- help pages ---------------------------------------------------------------------------------

class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def parse(html: str) -> Links:
    p = Links()
    p.feed(html)
    return p


HELP_PAGES = ["/json/help", "/json/builders/help", "/json/builders/runtests/help",
              "/json/builders/runtests/builds/help", "/json/builders/runtests/builds/_all/help",
              "/json/builders/runtests/builds/0/help",
              "/json/builders/runtests/builds/0/steps/help",
              "/json/builders/runtests/builds/0/steps/test/help",
              "/json/builders/runtests/builds/0/source_stamp/help",
              "/json/builders/runtests/builds/0/source_stamp/changes/help",
              "/json/builders/runtests/slaves/help", "/json/builders/runtests/pendingBuilds/help",
              "/json/slaves/help", "/json/slaves/slave1/help", "/json/project/help",
              "/json/metrics/help", "/json/change_sources/help", "/json/builders/help/"]


def test_help_links_work_at_every_depth(c):
    for page in HELP_PAGES:
        resp = c.get(page)
        assert resp.status_code == 200, page
        assert resp.headers["Content-Type"].startswith("text/html")
        links = parse(resp.data.decode())
        assert links.title.endswith(" help")
        assert links.hrefs
        for href in links.hrefs:
            target = urljoin("http://localhost" + page, href)
            parts = urlsplit(target)
            assert parts.path.startswith("/json"), (page, href)
            url = parts.path + ("?" + parts.query if parts.query else "")
            assert c.get(url).status_code == 200, (page, href, url)


def test_help_content(c):
    html = c.get("/json/help").data.decode()
    assert "<title>Buildbot JSON help</title>" in html
    assert "Parent&#39;s Help" not in html and "Parent's Help" not in html
    for flag in ("as_text", "compact", "select", "numbuilds", "filter", "callback"):
        assert f"<dt>{flag}</dt>" in html
    # examples filled with the first builder that has a build, its latest build, its slave
    assert "builders/runtests/builds?select=-1&amp;select=-2&amp;as_text=1" in html
    assert "select=slaves/slave1/&amp;select=project&amp;select=builders/runtests/builds/2" \
        in html
    builder = c.get("/json/builders/runtests/help").data.decode()
    assert "Describe a single builder." in builder
    assert 'href="../../builders/help"' in builder  # parent's help
    assert 'href="../../builders/runtests/builds"' in builder
    step = c.get("/json/builders/runtests/builds/0/steps/test/help").data.decode()
    assert "A single build step." in step


def test_help_escapes_names(odd):
    html = odd.get("/json/builders/help").data.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "%3Cscript%3Ealert%281%29%3C%2Fscript%3E" in html  # the link to it
    assert odd.get("/json/builders/%3Cscript%3Ealert%281%29%3C%2Fscript%3E/help"
                   ).status_code == 200
    page = odd.get("/json/builders/a%2Fb%20c/builds/0/help").data.decode()
    assert "a/b c" in page and re.search(r'href="[./]*builders/a%2Fb%20c/builds/0/steps"', page)


def test_help_with_no_builds_uses_placeholders(client):
    assert client.get("/json/help").status_code == 200



NASTY = [
    "/json/%00", "/json/builders/%00/builds", "/json/builders/runtests/builds/%00",
    "/json/builders/runtests/builds/0/steps/%00", "/json/slaves/%00",
    "/json/builders/runtests/builds/0/source_stamp/changes/%00",
    "/json/builders/runtests/builds/--1", "/json/builders/runtests/builds/+1",
    "/json/builders/runtests/builds/1e3", "/json/builders/runtests/builds/%20",
    "/json/builders/runtests/builds/0/steps/-1", "/json/builders/runtests/builds/0/steps/"
    "99999999999999999999999", "/json?select=%00", "/json?select=..%2F..",
    "/json?select=//&select=/", "/json?select=builders/%25ZZ", "/json?select=%FF%FE",
    "/json/builders/runtests/builds?select=99999999999999999999&select=-99999999999999999",
    "/json/builders/runtests/builds/_all?max=%00", "/json/slaves?numbuilds=-1",
    "/json/slaves?numbuilds=99999999999999999999999", "/json?callback=%00",
    "/json?as_text=%FF&compact=&filter=", "/json/%FF/help", "/json/help/help",
    "/json/builders/runtests/builds/0/steps/0/help?as_text=1", "/json/builders/runtests/..",
    "/json/builders/runtests/builds/0/steps/%C2%B2", "/json/builders/runtests/builds/%C2%B2",
    "/json/builders/runtests/builds/_all?max=%C2%B2", "/json/builders/runtests/builds/1%0A",
]


def test_no_input_makes_a_500(c):
    for url in NASTY:
        assert c.get(url).status_code in (200, 400, 404), url
