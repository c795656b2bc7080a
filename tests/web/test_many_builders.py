"""A site with 1,100 builders, every one with a build (on SQLite and PostgreSQL): the
overview pages and documents that read a few builds of every builder answer 200 and show
the right boxes.

Those queries name each builder in one condition (``builderid = X AND number >= Y OR …``);
SQLite refuses such a condition beyond ~1,000 terms ("Expression tree is too large"), so
they run one statement per group of builders (``bbweb/status/batching.py``)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import sqlalchemy as sa

from bbweb.db.schema import builders as builders_table
from bbweb.db.schema import buildrequests, builds
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.force import force_build
from bbweb.status.batching import GROUP
from tests.support.history import claim, force, run
from tests.support.querycount import counting

COUNT = 1100  # more than SQLite's 1,000 expression levels, six groups of builders
NAMES = [f"b{i:04d}" for i in range(COUNT)]

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Many'
c['buildbotURL'] = 'http://bb.example.org/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('s1', 'pw')]
f = BuildFactory([ShellCommand(command=['make'], name='compile')])
names = ['b%04d' % i for i in range(COUNT)]
c['builders'] = [BuilderConfig(name=n, slavenames=['s1'], factory=f,
                               category='cat%d' % (i % 3))
                 for i, n in enumerate(names)]
c['schedulers'] = [ForceScheduler(name='force', builderNames=names)]
""".replace("COUNT", str(COUNT))

T0 = 1_700_000_000.0


def nightly_builds(master: Any) -> None:
    """One finished, successful build #0 on every builder, from one forced buildset.

    The buildset and its requests come from the engine; the builds are the rows a claim
    and a finish write (a claim through the engine considers every builder the slave
    serves: 1,100 of them take seconds), inserted at once. Build ``i`` ran at ``T0 + i``."""
    with master.db.write() as conn:
        force_build(conn, master.config, NAMES, reason="nightly", scheduler="force")
        sid = es.slave_id(conn, "s1")
        reqs = conn.execute(sa.select(buildrequests.c.id, buildrequests.c.builderid)
                            .order_by(buildrequests.c.id)).all()
        assert len(reqs) == COUNT
        conn.execute(buildrequests.update().values(
            claimed_by=sid, claimed_at=T0, complete=True, complete_at=T0 + COUNT, results=0))
        conn.execute(builds.insert(), [
            {"builderid": r.builderid, "number": 0, "buildrequestid": r.id, "slaveid": sid,
             "reason": "nightly", "started_at": T0 + i, "finished_at": T0 + i + 0.5,
             "results": 0, "text": json.dumps(["build", "successful"])}
            for i, r in enumerate(reqs)])
        conn.execute(builders_table.update().values(next_number=1))


@pytest.fixture
def web(make_master):
    """1,100 builders, each with build #0 (success); then, through the engine:
    b0007 #1 failed compile, b0500 #1 success, b1099 #1 still running."""
    master = make_master(CFG)
    with master.db.write() as conn:
        sync_builders(conn, master.config)
        es.slave_connected(conn, "s1", {"host": "h1"}, now=T0)
    nightly_builds(master)
    force(master, "b0007")
    b = claim(master, "s1", T0 + 5000)
    run(master, b.buildid, {"compile": 1}, T0 + 5001)
    force(master, "b0500")
    b = claim(master, "s1", T0 + 5010)
    run(master, b.buildid, {}, T0 + 5011)
    force(master, "b1099")
    b = claim(master, "s1", T0 + 5020)
    assert (b.builder, b.number) == ("b1099", 1)
    app = master.app()
    yield app
    app.extensions["bbweb"].db.dispose()


def get(app, url: str) -> str:
    """The page's text; it must answer 200, in a few statements."""
    client = app.test_client()
    with counting(app) as statements:
        resp = client.get(url)
    assert resp.status_code == 200, (url, resp.status_code, resp.data[-400:])
    # a statement per group of builders, never one per builder
    assert len(statements) < 40, (url, len(statements))
    return resp.get_data(as_text=True)


def check_builders_page(web) -> None:
    html = get(web, "/builders")
    assert len(re.findall(r'<td class="box builder">', html)) == COUNT
    assert '<td class="LastBuild box success"><a href="./builders/b0000/builds/0">#0</a>' \
        in html
    assert '<td class="LastBuild box failure"><a href="./builders/b0007/builds/1">#1</a>' \
        in html
    assert '<td class="LastBuild box success"><a href="./builders/b0500/builds/1">#1</a>' \
        in html
    assert '<td class="LastBuild box success"><a href="./builders/b1099/builds/0">#0</a>' \
        in html
    assert re.search(r'<td class="Activity box building">building<br>'
                     r'<a href="./builders/b1099/builds/1">#1</a>', html)


def check_waterfall(web) -> None:
    html = get(web, "/waterfall")
    last = re.findall(r'<td class="LastBuild box (\w+)"><a href="./builders/(b\d+)">', html)
    assert len(last) == COUNT
    results = dict((name, css) for css, name in last)
    assert results["b0007"] == "failure" and results["b0000"] == "success"
    assert results["b1099"] == "success"  # its last finished build: #0
    assert 'href="./builders/b0007/builds/1/steps/compile">compile<br>failed</a>' in html
    assert re.search(r'<a href="./builders/b1099/builds/1"[^>]*>Build 1</a>', html)


def check_grid_and_tgrid(web) -> None:
    html = get(web, "/grid")
    rows = re.findall(r'<tr><th class="builder \w+" scope="row">', html)
    assert len(rows) == COUNT
    assert '<td class="build failure"><a href="./builders/b0007/builds/1"' in html
    assert '<td class="build running"><a href="./builders/b1099/builds/1"' in html
    assert '<td class="build success"><a href="./builders/b0000/builds/0"' in html
    html = get(web, "/tgrid")
    assert len(re.findall(r'<th class="builder \w+" scope="col">', html)) == COUNT
    assert '<td class="build failure"><a href="./builders/b0007/builds/1"' in html
    assert '<td class="build success"><a href="./builders/b0999/builds/0"' in html


def check_console(web) -> None:
    html = get(web, "/console")
    status = html.split('<tr class="builder-status">')[1].split("</tr>")[0]
    assert len(re.findall(r'<a href="./builders/b\d+"', status)) == COUNT
    assert '<td class="cbox running"><a href="./builders/b1099/builds/1"' in html
    assert 'href="./builders/b0007/builds/1" title="b0007 #1: Failed, failed compile"' in html
    assert 'href="./builders/b0000/builds/0" title="b0000 #0: Passed, build successful"' \
        in html


def test_json_builders_and_slaves(web):
    text = get(web, "/json/builders")
    doc = json.loads(text)
    assert len(doc) == COUNT
    assert doc["b0007"]["cachedBuilds"] == [0, 1]
    assert doc["b1099"]["currentBuilds"] == [1] and doc["b1099"]["state"] == "building"
    assert doc["b0001"]["cachedBuilds"] == [0] and doc["b0001"]["state"] == "idle"
    text = get(web, "/json/slaves")
    slave = json.loads(text)["s1"]
    assert len(slave["builders"]) == COUNT
    assert slave["builders"]["b0007"] == [1, 0] and slave["builders"]["b1099"] == [0]


def check_one_line_per_build(web) -> None:
    html = get(web, "/one_line_per_build")
    found = re.findall(r'<a href="./builders/(b\d+)/builds/(\d+)">#\d+</a>', html)
    # newest finish first: the two engine builds, then the nightly ones from the last
    assert found[:4] == [("b0500", "1"), ("b0007", "1"), ("b1099", "0"), ("b1098", "0")]
    assert len(found) == 20


def test_overview_pages(web):
    assert COUNT > 1000 and COUNT > 5 * GROUP  # more than one statement can name
    check_builders_page(web)
    check_waterfall(web)
    check_grid_and_tgrid(web)
    check_console(web)
    check_one_line_per_build(web)
