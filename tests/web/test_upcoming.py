"""Upcoming scheduled builds (Nightly, Periodic) on the activity boxes and builder cells,
and the branch filter of the "last build" boxes answered in SQL.

The predicted times must be the ones the daemon's ``tick`` keeps: the engine tests below
tick through time and compare.
"""

from __future__ import annotations

import datetime
import re
import time

import pytest
import sqlalchemy as sa

from bbweb.db.schema import buildsets
from bbweb.engine import builds as eb
from bbweb.engine import schedulers as es_sched
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.force import force_build
from bbweb.mastercfg import firing
from bbweb.mastercfg.schedulers import Nightly, Periodic
from bbweb.status import overview, queries
from tests.support.querycount import counting

DAY = 86400.0

UPCOMING_CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Upcoming'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave(n, 'pw') for n in ('s1', 's2', 's3')]
f = BuildFactory([ShellCommand(command=['make'], name='compile')])
c['builders'] = [BuilderConfig(name=n, slavenames=['s1'], factory=f)
                 for n in ('pb', 'both', 'plain', 'soon')]
c['builders'].append(BuilderConfig(name='nb', slavenames=['s1', 's3'], factory=f))
c['builders'].append(BuilderConfig(name='off', slavenames=['s2'], factory=f))
c['schedulers'] = [
    Nightly(name='nightly', builderNames=['nb', 'both'], hour=HOUR, minute=MINUTE),
    Periodic(name='daily', builderNames=['pb', 'both', 'off'], periodicBuildTimer=86400),
    Periodic(name='fresh', builderNames=['soon'], periodicBuildTimer=3600),
    ForceScheduler(name='force', builderNames=['nb', 'pb', 'both', 'plain', 'soon', 'off']),
]
"""


def hhmm(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))


@pytest.fixture
def scheduled(make_master):
    """A master whose Nightly fires ~3 h 10 min from now and whose daily Periodic last
    fired (through the daemon's ``tick``) so that it fires again 2 h 5 min 30 s from now.
    ``fresh`` lost its state: it is due now. s1 and s3 are connected, s2 (the only slave
    of builder ``off``) is not."""
    now = time.time()
    target = datetime.datetime.fromtimestamp(now + 3 * 3600 + 600).replace(
        second=0, microsecond=0)
    cfg = UPCOMING_CFG.replace("HOUR", str(target.hour)).replace("MINUTE", str(target.minute))
    master = make_master(cfg)
    periodic_at = now + 2 * 3600 + 5 * 60 + 30
    with master.db.write() as conn:
        sync_builders(conn, master.config)
        es.slave_connected(conn, "s1", {})
        es.slave_connected(conn, "s3", {})
        # the daemon fired 'daily' and 'fresh' a day before; 'fresh' then loses its state
        es_sched.tick(conn, master.config, now=periodic_at - DAY)
        conn.execute(sa.text("DELETE FROM scheduler_state WHERE scheduler = 'fresh'"))
    app = master.app()
    yield app.test_client(), target.timestamp(), periodic_at
    app.extensions["bbweb"].db.dispose()


def activity_cell(html: str, builder: str) -> str:
    """The activity box of ``builder`` on /builders (the row that links to it)."""
    row = re.search(r'<tr[^>]*>\s*<td[^>]*><a href="(?:\./)?builders/' + re.escape(builder)
                    + r'">.*?</tr>', html, re.S)
    assert row, (builder, html)
    cell = re.search(r'<td class="Activity box [^"]*">.*?</td>', row.group(0), re.S)
    assert cell, row.group(0)
    return cell.group(0)


# The Nightly fires 3 h 9–10 min after the fixture's start (its minute is truncated), and
# the page is drawn a few seconds later: "8" when the fixture started in a minute's last
# seconds.
NIGHTLY_MINUTES = "(8|9|10)"


def countdown(hours: str, minutes: str, at: float) -> str:
    return rf'next in<br>~ {hours} hrs {minutes} mins<br>at {hhmm(at)}</span>'


def test_builders_page_shows_waiting_and_next_times(scheduled):
    client, nightly_at, periodic_at = scheduled
    html = client.get("/builders").get_data(as_text=True)

    nb = activity_cell(html, "nb")
    assert nb.startswith('<td class="Activity box waiting">waiting<br>'), nb
    assert re.search(countdown("3", NIGHTLY_MINUTES, nightly_at), nb), nb
    assert "pending" not in nb

    # Periodic: fired by tick a day ago, so a build is pending and the next is in 2 h 5 min
    pb = activity_cell(html, "pb")
    assert re.search(r'waiting<br>1 pending<br><span class="countdown" title="[^"]+">'
                     + countdown("2", "5", periodic_at), pb), pb

    # two schedulers: both times, soonest first
    both = activity_cell(html, "both")
    assert re.search(countdown("2", "5", periodic_at) + '<br><span class="countdown" '
                     r'title="[^"]+">' + countdown("3", NIGHTLY_MINUTES, nightly_at), both), both

    # no state (as if never fired): the daemon fires it on its next tick
    assert re.search(r'waiting<br>1 pending<br><span class="countdown" title="[^"]+">'
                     r'&lt; 1 min</span></td>', activity_cell(html, "soon"))
    # offline stays offline, with its scheduled time; unscheduled idle stays idle
    off = activity_cell(html, "off")
    assert off.startswith('<td class="Activity box offline">offline<br>1 pending<br>'), off
    assert re.search(countdown("2", "5", periodic_at), off)
    assert activity_cell(html, "plain") == '<td class="Activity box idle">idle</td>'


def test_building_builder_keeps_its_state_and_lists_next_times(scheduled):
    client, nightly_at, _ = scheduled
    app = client.application
    db = app.extensions["bbweb"].db
    cfg = app.extensions["bbweb"].config
    with db.write() as conn:
        force_build(conn, cfg, ["nb"], scheduler="force", reason="now", owner="me")
        claimed = eb.claim_build_request(conn, cfg, "s3", es.slave_id(conn, "s3"))
        assert claimed is not None
        eb.next_step(conn, cfg, claimed.buildid)
    nb = activity_cell(client.get("/builders").get_data(as_text=True), "nb")
    assert nb.startswith('<td class="Activity box building">building<br>'), nb
    assert re.search(r'builds/0">#0</a> ETA: no estimate<br><span class="countdown" '
                     r'title="[^"]+">' + countdown("3", NIGHTLY_MINUTES, nightly_at), nb), nb


def test_waterfall_activity_row(scheduled):
    client, nightly_at, periodic_at = scheduled
    html = client.get("/waterfall").get_data(as_text=True)
    row = html.split('<tr class="Activity">')[1].split("</tr>")[0]
    cells = re.findall(r'<td class="Activity box [^"]*">.*?</td>', row, re.S)
    # builders in natural order: both nb off pb plain soon
    assert [re.match(r'<td class="Activity box (\w+)">', c).group(1) for c in cells] == [
        "waiting", "waiting", "offline", "waiting", "idle", "waiting"]
    assert re.search(countdown("3", NIGHTLY_MINUTES, nightly_at), cells[1])
    assert re.search(countdown("2", "5", periodic_at), cells[3])
    assert "&lt; 1 min" in cells[5]


@pytest.mark.parametrize("view", ["/grid", "/tgrid"])
def test_grid_builder_cells_show_waiting(scheduled, view):
    client, _, _ = scheduled
    html = client.get(view).get_data(as_text=True)
    states = {name: state for state, name in re.findall(
        r'<th class="builder ([^"]*)" scope="\w+"><a href="(?:\./)?builders/\w+">(\w+)</a>', html)}
    assert states == {"both": "waiting", "nb": "waiting", "off": "offline", "pb": "waiting",
                      "plain": "idle", "soon": "waiting"}, states
    assert '>nb</a><br>(waiting)</th>' in html
    assert '>pb</a><br>(waiting, plus 1)</th>' in html
    assert '>plain</a></th>' in html


def test_no_timed_scheduler_no_extra_query(client, master):
    """The default config has no Nightly/Periodic: the pages read no scheduler state."""
    with master.db.write() as conn:
        sync_builders(conn, master.config)
    app = client.application
    for url in ("/builders", "/waterfall", "/grid"):
        with counting(app) as statements:
            assert client.get(url).status_code == 200
        assert not [s for s in statements if "scheduler_state" in s], url


# -- the prediction is what tick does -----------------------------------------------------------

TICK_CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('s1', 'pw')]
f = BuildFactory([ShellCommand(command=['make'], name='compile')])
c['builders'] = [BuilderConfig(name='b', slavenames=['s1'], factory=f)]
c['schedulers'] = [
    Nightly(name='monday', builderNames=['b'], dayOfWeek=0, hour=3, minute=30),
    Periodic(name='every10', builderNames=['b'], periodicBuildTimer=600),
]
"""


def local_ts(*args: int) -> float:
    return datetime.datetime(*args).timestamp()


def fired(master, now: float) -> list[str]:
    """Tick once at ``now``; the schedulers that created a buildset."""
    with master.db.write() as conn:
        ids = es_sched.tick(conn, master.config, now=now)
        return sorted(conn.execute(sa.select(buildsets.c.scheduler)
                                   .where(buildsets.c.id.in_(ids))).scalars())


def predicted(master, now: float) -> dict[str, float]:
    from bbweb.status.upcoming import upcoming_builds

    with master.db.read() as conn:
        return {u.scheduler: u.at for u in upcoming_builds(conn, master.config, ["b"],
                                                           now=now)["b"]}


def test_prediction_matches_tick(make_master):
    master = make_master(TICK_CFG)
    with master.db.write() as conn:
        sync_builders(conn, master.config)
    wednesday = local_ts(2024, 1, 3, 12, 0, 0)  # 3 January 2024 is a Wednesday
    monday = local_ts(2024, 1, 8, 3, 30)
    # Periodic never fired: due now; Nightly: dayOfWeek 0 is Monday (Buildbot's numbering)
    assert predicted(master, wednesday) == {"monday": monday, "every10": wednesday}
    assert fired(master, wednesday) == ["every10"]
    assert predicted(master, wednesday + 1) == {"monday": monday, "every10": wednesday + 600}
    assert fired(master, wednesday + 599) == []
    assert fired(master, wednesday + 600) == ["every10"]
    # the Nightly: nothing a second before its minute, a build in it, once
    assert fired(master, monday - 1) == ["every10"]  # (the Periodic had been due long)
    assert predicted(master, monday - 1)["monday"] == monday
    assert predicted(master, monday + 20)["monday"] == monday + 20  # due: fires on next tick
    assert fired(master, monday + 20) == ["monday"]  # (every10 fired 21 s ago)
    assert fired(master, monday + 40) == []  # same minute: not twice
    assert predicted(master, monday + 40)["monday"] == local_ts(2024, 1, 15, 3, 30)


@pytest.mark.parametrize("kwargs", [
    {"hour": 3, "minute": 30},
    {"minute": [0, 15, 45]},
    {"dayOfWeek": [5, 6], "hour": [0, 23], "minute": 59},
    {"dayOfMonth": 31, "hour": 2, "minute": 30},
    {"month": 2, "dayOfMonth": 29, "hour": 0, "minute": 0},
    {"dayOfWeek": 0, "dayOfMonth": 13, "hour": 12, "minute": 0},  # a Monday the 13th
    {"hour": 2, "minute": [0, 30]},  # inside the spring-forward gap in Europe/Berlin
])
@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin"])
def test_next_nightly_fire_agrees_with_minute_by_minute_ticks(kwargs, tz, monkeypatch):
    """Simulate the daemon ticking every 20 s (state kept as tick keeps it) and check the
    prediction made at each tick against when it really fires next — across daylight
    saving changes too."""
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        sched = Nightly(name="n", builderNames=["b"], **kwargs)
        # two windows: one spanning the spring change, one the autumn change (2024)
        for start in (local_ts(2024, 3, 29, 0, 0), local_ts(2024, 10, 25, 0, 0)):
            ticks = [start + 20 * i for i in range(int(4 * DAY / 20))]
            last = None
            fires = []
            for t in ticks:
                if firing.nightly_due(sched, last, t):
                    last = es_sched.nightly_minute_key(datetime.datetime.fromtimestamp(t))
                    fires.append(t)
            last = None
            for t in ticks[::7]:  # a prediction every 140 s
                real = next((f for f in fires if f >= t), None)
                guess = firing.next_nightly_fire(sched, last, t)
                if real is None:
                    assert guess is None or guess > ticks[-1], (t, guess)
                else:
                    # tick fires within 20 s of the predicted minute start (or at once)
                    assert guess is not None and 0 <= real - guess < 20, (t, guess, real)
                fired_now = [f for f in fires if t <= f < t + 140]
                if fired_now:
                    last = es_sched.nightly_minute_key(
                        datetime.datetime.fromtimestamp(fired_now[-1]))
    finally:
        monkeypatch.undo()
        time.tzset()


def test_impossible_nightly_never_fires():
    sched = Nightly(name="n", builderNames=["b"], month=2, dayOfMonth=30)
    assert firing.next_nightly_fire(sched, None, time.time()) is None
    assert firing.next_periodic_fire(
        Periodic(name="p", builderNames=["b"], periodicBuildTimer=60), 1000.0, 1010.0) == 1060


# -- the branch filter of the "last build" boxes ------------------------------------------------

BRANCH_CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('s1', 'pw'), BuildSlave('s2', 'pw')]
f = BuildFactory([ShellCommand(command=['make'], name='compile')])
c['builders'] = [BuilderConfig(name='b', slavenames=['s1'], factory=f),
                 BuilderConfig(name='c', slavenames=['s2'], factory=f)]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['b', 'c'])]
"""

# builds on each builder, in order: branch None, the literal 'trunk', 'feature', two
# codebases (one on 'feature', one on None), 'other'
PLAN = [None, "trunk", "feature", "multi", "other", None, "feature", "feature", "other",
        "multi", None, "other"]


def reference(conn, builder, count: int, branches, search: int) -> list[int]:
    """The old way: each build's branches in Python, over the newest ``search`` builds."""
    rows = conn.execute(sa.text(
        "SELECT id, number, finished_at FROM builds WHERE builderid = :b "
        "AND number >= :lo ORDER BY number DESC"), {"b": builder.id,
                                                    "lo": builder.next_number - search}).all()
    found = overview.build_branches(conn, [r.id for r in rows])
    return [r.number for r in rows
            if r.finished_at is not None and found.get(r.id, set()) & branches][:count]


def test_branch_filter_same_answer_as_before(make_master):
    master = make_master(BRANCH_CFG)
    cfg = master.config
    with master.db.write() as conn:
        sync_builders(conn, cfg)
        es.slave_connected(conn, "s1", {})
        es.slave_connected(conn, "s2", {})
    for i, branch in enumerate(PLAN):
        with master.db.write() as conn:
            kw = ({"codebases": {"a": {"branch": "feature"}, "z": {"branch": ""}}}
                  if branch == "multi" else {"branch": branch})
            force_build(conn, cfg, ["b", "c"], scheduler="force", reason=str(i), **kw)
            for slave in ("s1", "s2"):
                claimed = eb.claim_build_request(conn, cfg, slave, es.slave_id(conn, slave))
                if i in (7, 11) and slave == "s2":
                    eb.next_step(conn, cfg, claimed.buildid)  # left running
                    continue
                while (spec := eb.next_step(conn, cfg, claimed.buildid)) is not None:
                    eb.finish_step(conn, cfg, spec["id"], 0)
    filters = [{"trunk", None}, {None}, {"feature"}, {"other"}, {"nothing"},
               {"feature", "other"}, {"trunk"}]
    with master.db.read() as conn:
        rows = queries.builder_rows(conn, ["b", "c"])
        for branches in filters:
            for count, search in [(1, 200), (3, 200), (20, 200), (2, 5), (1, 1)]:
                got = overview.finished_builds(conn, rows.values(), count,
                                               branches=branches, search=search)
                for name, row in rows.items():
                    want = reference(conn, row, count, branches, search)
                    assert [b.number for b in got.get(row.id, [])] == want, (
                        name, branches, count, search)
        # with a property filter too (applied after the branch filter, in Python)
        got = overview.finished_builds(conn, rows.values(), 5, branches={"feature"},
                                       properties={"reason": "2"}, search=200)
        assert {k: [b.number for b in v] for k, v in got.items()} == {
            rows["b"].id: [2], rows["c"].id: [2]}
    # and through the pages: trunk is the default branch and a branch named 'trunk'
    app = master.app()
    try:
        client = app.test_client()
        html = client.get("/builders?branch=trunk").get_data(as_text=True)
        assert 'builders/b/builds/10"' in html and 'builders/c/builds/10"' in html
        html = client.get("/waterfall?branch=feature").get_data(as_text=True)
        last = html.split('<tr class="LastBuild">')[1].split("</tr>")[0]
        # b: #9 (multi, one stamp on feature); c: #9 too (#7 still runs)
        assert 'builders/b/builds/9"' in last and 'builders/c/builds/9"' in last, last
        html = client.get("/one_line_per_build/c?branch=other").get_data(as_text=True)
        assert re.findall(r'builds/(\d+)">#', html) == ["8", "4"]  # #11 still runs
    finally:
        app.extensions["bbweb"].db.dispose()
