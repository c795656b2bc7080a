"""The JSON API's queries scale with the page, not with history: the number of SQL
statements a request runs is the same for a builder with 5 builds and with 60."""

from __future__ import annotations

import pytest

from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.changes import ChangeInput, add_change
from bbweb.engine.force import force_build
from bbweb.status import queries
from tests.support.querycount import counting

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['buildbotURL'] = 'http://bb.example.org/'
c['slaves'] = [BuildSlave('s1', 'pw'), BuildSlave('s2', 'pw')]
f = BuildFactory([ShellCommand(command=['make'], name='compile'),
                  ShellCommand(command=['make', 'test'], name='test')])
c['builders'] = [BuilderConfig(name='b', slavenames=['s1', 's2'], factory=f),
                 BuilderConfig(name='other', slavenames=['s1'], factory=f)]
c['schedulers'] = [SingleBranchScheduler(name='all', branch=None, builderNames=['b']),
                   ForceScheduler(name='force', builderNames=['b', 'other'])]
"""


def add_builds(master, count: int, start: int) -> None:
    """``count`` finished builds on builder b (every third from a change), each in one
    transaction, alternating slaves."""
    cfg = master.config
    for i in range(start, start + count):
        slave = "s1" if i % 2 else "s2"
        with master.db.write() as conn:
            if i % 3 == 0:
                add_change(conn, cfg, ChangeInput(author=f"dev{i % 4}", files=[f"f{i}.c"],
                                                  revision=f"r{i}", properties={"n": i}))
            else:
                force_build(conn, cfg, ["b"], scheduler="force", reason=str(i))
            claimed = eb.claim_build_request(conn, cfg, slave, es.slave_id(conn, slave))
            assert claimed is not None and claimed.number == i
            while (spec := eb.next_step(conn, cfg, claimed.buildid)) is not None:
                eb.append_step_log(conn, cfg, spec["id"], "stdio", [("o", "x\n")])
                eb.finish_step(conn, cfg, spec["id"], i % 2)



PAGES = [
    "/json/builders/b/builds?" + "&".join(f"select=-{i}" for i in range(1, 21)),
    "/json/builders/b/builds/_all?max=20",
    "/json/builders/b/builds/-1",
    "/json/builders/b/builds/-1/steps",
    "/json/builders/b/builds/-1/source_stamp/changes",
    "/json/builders/b",
    "/json/builders",
    "/json/builders/b/slaves",
    "/json/slaves",
    "/json/slaves/s1?numbuilds=20",
    "/json/builders/b/pendingBuilds",
    "/json",
    "/json?select=slaves/s1&select=builders/b/builds/-1&select=builders/b/builds/-2",
    "/json/help",
]


@pytest.fixture
def setup(make_master):
    master = make_master(CFG)
    app = master.app()
    with master.db.write() as conn:
        sync_builders(conn, master.config)
        es.slave_connected(conn, "s1", {"host": "h1"})
        es.slave_connected(conn, "s2", {"host": "h2"})
    yield master, app
    app.extensions["bbweb"].db.dispose()


def measure(master) -> dict[str, tuple[int, int]]:
    """Statements of each page asked of a new web process (nothing kept: cold) and then
    again of the same process (its kept build documents and finished builds: warm)."""
    counts = {}
    for page in PAGES:
        app = master.app()
        try:
            client = app.test_client()
            seen = []
            for _ in range(2):
                with counting(app) as statements:
                    resp = client.get(page)
                assert resp.status_code == 200, (page, resp.data[:300])
                seen.append(len(statements))
        finally:
            app.extensions["bbweb"].db.dispose()
        counts[page] = (seen[0], seen[1])
    return counts


def test_query_count_does_not_grow_with_history(setup):
    master, app = setup
    add_builds(master, 5, 0)
    small = measure(master)
    add_builds(master, 55, 5)
    large = measure(master)
    for page in PAGES:
        assert large[page][0] <= small[page][0], (page, small[page], large[page])
        assert large[page][1] <= small[page][1], (page, small[page], large[page])
    # and a page of twenty builds is a handful of batched queries, not twenty times more
    assert large[PAGES[0]][0] <= 12, large[PAGES[0]]
    assert large[PAGES[1]][0] <= 12, large[PAGES[1]]
    # kept: the builds' rows only
    assert large[PAGES[0]][1] <= 4, large[PAGES[0]]


def test_select_loads_twenty_builds_in_one_batch(setup):
    master, app = setup
    add_builds(master, 25, 0)
    client = app.test_client()
    with counting(app) as statements:
        doc = client.get(PAGES[0]).get_json()
    assert [doc[f"-{i}"]["number"] for i in range(1, 21)] == list(range(24, 4, -1))
    build_selects = [s for s in statements if "FROM builds" in s and "steps" not in s]
    assert len(build_selects) == 1, statements


def test_all_builds_reads_only_the_newest_rows(setup):
    """``_all`` is an index range (ORDER BY number DESC LIMIT max), never the history."""
    master, app = setup
    add_builds(master, 30, 0)
    with master.db.read() as conn:
        builder = queries.get_builder(conn, "b")
        found = queries.latest_builds(conn, builder, 4)
        assert [b.number for b in found] == [29, 28, 27, 26]
        assert all(b.details_loaded and len(b.steps) == 2 for b in found)
        assert queries.build_numbers(conn, builder.id) == list(range(30))


# -- the query layer used directly (as HTML pages and notifiers will) -------------------------

def test_query_layer(setup):
    master, _app = setup
    add_builds(master, 7, 0)
    cfg = master.config
    with master.db.read() as conn:
        builder = queries.get_builder(conn, "b")
        assert builder.next_number == 7
        got = queries.get_builds(conn, builder, [-1, 0, 3, -7, -8, 7, 10**12])
        assert {k: v.number for k, v in got.items()} == {-1: 6, 0: 0, 3: 3, -7: 0}
        b6 = got[-1]
        assert b6.slave == "s2" and b6.results == 0 and b6.is_finished
        assert [s.name for s in b6.steps] == ["compile", "test"]
        assert [lg.name for s in b6.steps for lg in s.logs] == ["stdio", "stdio"]
        assert b6.sourcestamps[0].changes[0].author == "dev2"
        assert b6.blame == ["dev2"]
        assert [p[0] for p in b6.properties] == sorted(p[0] for p in b6.properties)
        assert queries.get_change(conn, b6.sourcestamps[0].changes[0].number).files == [
            "f6.c"]
        summaries = queries.builder_summaries(conn, cfg)
        assert list(summaries) == ["b", "other"]
        assert summaries["b"].state == "idle" and summaries["b"].pending == 0
        slaves = queries.get_slaves(conn, cfg)
        assert [s.name for s in slaves.values()] == ["s1", "s2"]
        assert slaves["s1"].host == "h1" and slaves["s1"].connected
        recent = queries.recent_builds_by_slave(conn, [builder], [slaves["s1"].id], 4)
        assert recent == {slaves["s1"].id: {"b": [5, 3]}}
        assert queries.running_builds(conn) == []
        assert queries.pending_build_requests(conn, builder) == []
        counters = queries.master_counters(conn, cfg)
        assert counters["builds.started"] == 7 and counters["builds.running"] == 0
