"""``/changes`` (the change sources) and ``/changes/N`` (one change), through HTTP against
changes stored by the engine, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest

from bbweb.engine.builders import sync_builders
from bbweb.engine.changes import ChangeInput, add_change

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('s1', 'pw')]
c['builders'] = [BuilderConfig(name='b', slavenames=['s1'],
                               factory=BuildFactory([ShellCommand(command=['make'])]))]

class Poller:
    def describe(self):
        return 'GitPoller watching <git://example.org/repo.git>'

class Broken:
    def describe(self):
        raise RuntimeError('no')

c['change_source'] = [Poller(), Broken()]
c['status'] = [WebStatus(http_port=8010,
    revlink=lambda rev, repo: 'http://cfg.example.org/%s' % rev,
    changecommentlink=(r'#(\\d+)', r'http://bugs.example.org/\\1', r'Bug \\g<0>'),
    projects={'frob': 'http://frob.example.org/'},
    repositories=lambda name: 'http://repos.example.org/' + name.rsplit('/', 1)[-1])]
"""

T0 = 1_700_000_000.0


def text_of(resp) -> str:
    return resp.get_data(as_text=True)


@pytest.fixture
def cmaster(make_master):
    return make_master(CFG)


@pytest.fixture
def cclient(cmaster):
    app = cmaster.app()
    yield app.test_client()
    app.extensions["bbweb"].db.dispose()


def store(master, **kw) -> int:
    with master.db.write() as conn:
        sync_builders(conn, master.config)
        return add_change(conn, master.config, ChangeInput(**kw), now=T0)


def test_change_sources_listed(cclient):
    resp = cclient.get("/changes")
    assert resp.status_code == 200
    html = text_of(resp)
    assert "<h1>Changesources</h1>" in html
    assert "<li class=\"\">GitPoller watching &lt;git://example.org/repo.git&gt;</li>" in html
    assert "<li class=\"alt\">Broken</li>" in html  # a failing describe() costs its text only


def test_no_change_sources(make_master):
    m = make_master(CFG.replace("c['change_source'] = [Poller(), Broken()]", ""))
    app = m.app()
    assert "<p>none (push only)</p>" in text_of(app.test_client().get("/changes"))
    app.extensions["bbweb"].db.dispose()


def test_change_page_shows_the_change_block(cmaster, cclient):
    n = store(cmaster, author="Alice Doe <alice@example.org>",
              comments="Fix #12 and <b>#7</b>\nsecond line", files=["src/z.c", "README"],
              revision="0123456789abcdef0123456789abcdef01234567ff", when=T0,
              branch="release/1.x", category="bugfix", properties={"ticket": 12, "who": "a"},
              repository="git://example.org/frob.git", project="frob", codebase="main")
    resp = cclient.get(f"/changes/{n}")
    assert resp.status_code == 200
    html = text_of(resp)
    assert f"<title>Change #{n}</title>" in html and f"<h1>Change #{n}</h1>" in html
    assert '<td class="category">bugfix</td>' in html
    assert '<td class="author"><span class="user">Alice Doe <span class="email">&lt;alice' \
           '<span style="display:none">ohnoyoudont</span>@example.org&gt;</span></span></td>' \
           in html
    assert re.search(r'<td class="when"><time>\w{3} \d\d \w{3} \d{4} \d\d:\d\d:\d\d</time>',
                     html)
    assert '<a href="http://repos.example.org/frob.git">git://example.org/frob.git</a>' in html
    assert '<a href="http://frob.example.org/">frob</a>' in html
    assert '<td class="branch">release/1.x</td>' in html
    # no revlink of its own: the configured one, 40 characters shown
    assert '<a href="http://cfg.example.org/0123456789abcdef0123456789abcdef01234567ff">' \
           "0123456789abcdef0123456789abcdef01234567...</a>" in html
    assert '<pre class="comments">Fix <a href="http://bugs.example.org/12" title="Bug #12">' \
           '#12</a> and &lt;b&gt;<a href="http://bugs.example.org/7" title="Bug #7">#7</a>' \
           "&lt;/b&gt;\nsecond line</pre>" in html
    assert "<li>src/z.c</li>\n  <li>README</li>" in html
    assert '<tr class=""><th scope="row">ticket</th><td class="value">12</td></tr>' in html
    assert '<th scope="row">who</th><td class="value">a</td>' in html


def test_a_change_with_its_own_revlink_and_few_fields(cmaster, cclient):
    n = store(cmaster, author="bob", revision="r42", revlink="http://own.example.org/r42")
    html = text_of(cclient.get(f"/changes/{n}"))
    assert '<a href="http://own.example.org/r42">r42</a>' in html
    assert "cfg.example.org" not in html
    assert "<p class=\"note\">no files</p>" in html
    for absent in ("Repository", "Project", "Branch", "<h3>Comments</h3>", "<h3>Properties"):
        assert absent not in html
    # a revlink that is not a web link is shown as text
    m = store(cmaster, author="eve", revision="r43", revlink="javascript:alert(1)")
    evil = text_of(cclient.get(f"/changes/{m}"))
    assert "javascript:" not in evil, evil
    assert '<td class="revision"><span class="revision" title="Revision r43">r43</span>' in evil


def test_bad_and_missing_change_numbers(cmaster, cclient):
    store(cmaster, author="bob")
    resp = cclient.get("/changes/abc")
    assert resp.status_code == 404 and "Expected a change number" in text_of(resp)
    resp = cclient.get("/changes/7")
    assert resp.status_code == 404
    html = text_of(resp)
    assert "No change number 7" in html and 'class="footer"' in html
    assert cclient.get("/changes/99999999999999").status_code == 404
    assert cclient.get("/changes/-1").status_code == 404
    assert cclient.get("/changes/1").status_code == 200
