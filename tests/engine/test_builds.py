"""The build lifecycle through the engine: results, properties, numbering, claims, stops."""

from __future__ import annotations

import json
import threading
import time

import sqlalchemy as sa

from bbweb.db.schema import buildrequests, builds, buildsets, steps
from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.changes import ChangeInput, add_change
from bbweb.engine.force import force_build
from bbweb.engine.logs import read_text
from bbweb.status.builder import EXCEPTION, FAILURE, SKIPPED, SUCCESS, WARNINGS

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['properties'] = {'global_prop': 'g'}
c['slaves'] = [BuildSlave('s1', 'pw', properties={'os': 'linux'}),
               BuildSlave('s2', 'pw', max_builds=1)]
def fail(**kw):
    return ShellCommand(command=['false'], **kw)
def ok(name, **kw):
    return ShellCommand(command=['true'], name=name, **kw)
warn = BuildFactory([ok('a'), fail(name='soft', flunkOnFailure=False, warnOnFailure=True),
                     ok('b')])
halt = BuildFactory([ok('a'), fail(name='hard', haltOnFailure=True), ok('never'),
                     ok('cleanup', alwaysRun=True)])
flunk = BuildFactory([fail(name='f1'), ok('after')])
props = BuildFactory([
    ShellCommand(name='show', command=['echo', Interpolate('%(prop:branch)s'),
                                       WithProperties('%(buildername)s-%(buildnumber)s'),
                                       Property('missing', default='dflt')]),
    ShellCommand(name='skipme', command='true', doStepIf=False),
])
broken = BuildFactory([ShellCommand(name='bad', command=WithProperties('%(nosuch)s')),
                       ok('next')])
c['builders'] = [
    BuilderConfig(name='warn', slavenames=['s1', 's2'], factory=warn),
    BuilderConfig(name='halt', slavenames=['s1'], factory=halt),
    BuilderConfig(name='flunk', slavenames=['s1'], factory=flunk),
    BuilderConfig(name='props', slavenames=['s1'], factory=props,
                  properties={'builder_prop': 'bp'}),
    BuilderConfig(name='broken', slavenames=['s1'], factory=broken),
]
c['schedulers'] = [
    AnyBranchScheduler(name='sched', builderNames=['props'], properties={'sp': 1}),
    ForceScheduler(name='force', builderNames=['warn', 'halt', 'flunk', 'props', 'broken']),
]
"""


def setup(master):
    with master.db.write() as conn:
        sync_builders(conn, master.config)
        ids = {n: es.slave_connected(conn, n, {"host": n}) for n in ("s1", "s2")}
    return ids


def force(master, builder, **kw):
    with master.db.write() as conn:
        return force_build(conn, master.config, [builder], scheduler="force", **kw)


def claim(master, slave="s1", sid=None):
    with master.db.write() as conn:
        sid = sid or es.slave_id(conn, slave)
        return eb.claim_build_request(conn, master.config, slave, sid)


def run_build(master, claimed, rc_for=lambda spec: 0 if spec.get("command") != ["false"] else 1,
              props_for=lambda spec: {}):
    """Play the worker: run every step the master hands out with the given rc."""
    specs = []
    while True:
        with master.db.write() as conn:
            spec = eb.next_step(conn, master.config, claimed.buildid)
        if spec is None:
            return specs
        specs.append(spec)
        with master.db.write() as conn:
            eb.append_step_log(conn, master.config, spec["id"], "stdio",
                               [("h", "running\n"), ("o", "out\n")])
            eb.finish_step(conn, master.config, spec["id"], rc_for(spec),
                           properties=props_for(spec))


def build_row(master, buildid):
    with master.db.read() as conn:
        b = conn.execute(sa.select(builds).where(builds.c.id == buildid)).one()
        st = conn.execute(sa.select(steps).where(steps.c.buildid == buildid)
                          .order_by(steps.c.number)).all()
    return b, st


def test_warn_on_failure_gives_warnings(make_master):
    m = make_master(CFG)
    setup(m)
    force(m, "warn")
    c = claim(m)
    run_build(m, c)
    b, st = build_row(m, c.buildid)
    assert b.results == WARNINGS
    assert json.loads(b.text) == ["warnings", "soft"]
    assert [s.results for s in st] == [SUCCESS, FAILURE, SUCCESS]
    assert json.loads(st[1].text) == ["soft", "failed"]


def test_halt_on_failure_stops_but_always_run_runs(make_master):
    m = make_master(CFG)
    setup(m)
    force(m, "halt")
    c = claim(m)
    specs = run_build(m, c)
    assert [s["name"] for s in specs] == ["a", "hard", "cleanup"]
    b, st = build_row(m, c.buildid)
    assert b.results == FAILURE
    assert json.loads(b.text) == ["failed", "hard"]
    never = st[2]
    assert never.name == "never" and never.started_at is None and never.results is None


def test_flunk_on_failure_continues(make_master):
    m = make_master(CFG)
    setup(m)
    force(m, "flunk")
    c = claim(m)
    specs = run_build(m, c)
    assert [s["name"] for s in specs] == ["f1", "after"]
    b, _ = build_row(m, c.buildid)
    assert b.results == FAILURE
    with m.db.read() as conn:
        br = conn.execute(sa.select(buildrequests)).one()
        bs = conn.execute(sa.select(buildsets)).one()
    assert br.complete and br.results == FAILURE
    assert bs.complete and bs.results == FAILURE


def test_properties_rendering_and_sources(make_master):
    m = make_master(CFG)
    setup(m)
    with m.db.write() as conn:
        add_change(conn, m.config, ChangeInput(author="alice", revision="r1", branch="dev",
                                               repository="git://repo", project="proj",
                                               properties={"cp": "x"}))
        add_change(conn, m.config, ChangeInput(author="bob", revision="r2", branch="dev",
                                               repository="git://repo", project="proj"))
    c = claim(m)
    assert c is not None and c.builder == "props" and c.number == 0
    specs = run_build(m, c, props_for=lambda s: {"got_revision": "r1-full"})
    assert specs[0]["command"] == ["echo", "dev", "props-0", "dflt"]
    assert len(specs) == 1  # doStepIf=False never reaches the worker
    with m.db.read() as conn:
        props = eb.get_properties(conn, c.buildid)
    assert props["buildername"] == ("props", "Builder")
    assert props["buildnumber"] == (0, "Build")
    assert props["slavename"] == ("s1", "BuildSlave")
    assert props["branch"] == ("dev", "Build")
    assert props["revision"] == ("r1", "Build")  # one buildset per change here
    assert props["repository"] == ("git://repo", "Build")
    assert props["project"] == ("proj", "Build")
    assert props["scheduler"] == ("sched", "Scheduler")
    assert props["sp"] == (1, "Scheduler")
    assert props["builder_prop"] == ("bp", "Builder")
    assert props["global_prop"] == ("g", "Global")
    assert props["os"] == ("linux", "BuildSlave")
    assert props["cp"] == ("x", "Change")
    assert props["got_revision"][0] == "r1-full"
    assert props["reason"][0].startswith("The AnyBranchScheduler scheduler named 'sched'")
    _, st = build_row(m, c.buildid)
    assert st[1].results == SKIPPED
    # the second change made its own buildset: the next claim builds r2
    c2 = claim(m)
    assert c2.number == 1
    with m.db.read() as conn:
        assert eb.get_properties(conn, c2.buildid)["revision"][0] == "r2"


def test_force_properties(make_master):
    m = make_master(CFG)
    setup(m)
    force(m, "props", reason="try it", owner="me@example.org", branch="feature",
          revision="deadbeef", properties={"extra": "yes"})
    c = claim(m)
    with m.db.read() as conn:
        props = eb.get_properties(conn, c.buildid)
        b = conn.execute(sa.select(builds)).one()
    assert props["owner"] == ("me@example.org", "Force Build Form")
    assert props["reason"] == ("try it", "Force Build Form")
    assert props["extra"] == ("yes", "Force Build Form")
    assert props["branch"][0] == "feature" and props["revision"][0] == "deadbeef"
    assert b.reason == "A build was forced by 'me@example.org': try it"


def test_render_error_is_an_exception_with_a_log(make_master):
    m = make_master(CFG)
    setup(m)
    force(m, "broken")
    c = claim(m)
    specs = run_build(m, c)
    assert specs == []
    b, st = build_row(m, c.buildid)
    assert b.results == EXCEPTION
    assert st[0].results == EXCEPTION
    with m.db.read() as conn:
        from bbweb.db.schema import logs
        logid = conn.execute(sa.select(logs.c.id).where(logs.c.stepid == st[0].id)).scalar()
        assert "nosuch" in read_text(conn, logid)


def test_build_numbers_per_builder_and_max_builds(make_master):
    m = make_master(CFG)
    ids = setup(m)
    for _ in range(3):
        force(m, "warn")
    force(m, "halt")
    first = claim(m, "s2", ids["s2"])
    assert first.builder == "warn" and first.number == 0
    assert claim(m, "s2", ids["s2"]) is None  # max_builds=1 and one is running
    second = claim(m, "s1", ids["s1"])
    assert (second.builder, second.number) == ("warn", 1)
    run_build(m, first)
    third = claim(m, "s2", ids["s2"])
    assert (third.builder, third.number) == ("warn", 2)
    halt = claim(m, "s1", ids["s1"])
    assert (halt.builder, halt.number) == ("halt", 0)


def test_stop_ends_build_as_exception(make_master):
    m = make_master(CFG)
    setup(m)
    force(m, "flunk")
    c = claim(m)
    with m.db.write() as conn:
        spec = eb.next_step(conn, m.config, c.buildid)
        assert eb.request_stop(conn, c.buildid, "stopped by alice")
        assert not eb.request_stop(conn, c.buildid, "again")
    with m.db.write() as conn:
        eb.finish_step(conn, m.config, spec["id"], -15, interrupted="stopped")
        assert eb.next_step(conn, m.config, c.buildid) is None
    b, st = build_row(m, c.buildid)
    assert b.results == EXCEPTION
    assert json.loads(b.text) == ["exception", "interrupted"]
    assert st[0].results == EXCEPTION and st[1].started_at is None


def test_lost_slave_requeues_request(make_master):
    m = make_master(CFG)
    ids = setup(m)
    force(m, "flunk")
    c = claim(m)
    with m.db.write() as conn:
        eb.next_step(conn, m.config, c.buildid)
        lost = eb.abandon_builds_of_slave(conn, m.config, ids["s1"])
    assert lost == [c.buildid]
    b, st = build_row(m, c.buildid)
    assert b.results == EXCEPTION and json.loads(b.text) == ["exception", "slave", "lost"]
    assert st[0].results == EXCEPTION
    again = claim(m)
    assert again is not None and again.number == c.number + 1
    with m.db.read() as conn:
        br = conn.execute(sa.select(buildrequests)).one()
    assert br.claimed_by == ids["s1"] and not br.complete


def test_invalid_utf8_in_log_is_replaced(make_master):
    m = make_master(CFG)
    setup(m)
    force(m, "flunk")
    c = claim(m)
    with m.db.write() as conn:
        spec = eb.next_step(conn, m.config, c.buildid)
        eb.append_step_log(conn, m.config, spec["id"], "stdio",
                           [("o", b"ok \xff\xfe bytes\n"), ("e", "x" * 10000)])
    with m.db.read() as conn:
        from bbweb.db.schema import log_chunks, logs
        logid = conn.execute(sa.select(logs.c.id).where(logs.c.stepid == spec["id"])).scalar()
        text = read_text(conn, logid)
        compressed = [r.compressed for r in conn.execute(sa.select(log_chunks))]
    assert text.startswith("ok \ufffd\ufffd bytes\n")
    assert text.endswith("x" * 10000)
    assert compressed == [0, 1]  # the big chunk is stored compressed


CLAIMERS = 8
REQUESTS = 40


def test_claim_race_no_double_claims(make_master):
    """Many workers claim at once, each in its own connection and thread."""
    cfg = CFG.replace("BuildSlave('s2', 'pw', max_builds=1)", "BuildSlave('s2', 'pw')")
    cfg = cfg.replace("c['slaves'] = [", "c['slaves'] = [" + ", ".join(
        f"BuildSlave('w{i}', 'pw')" for i in range(CLAIMERS)) + ", ")
    cfg = cfg.replace("slavenames=['s1', 's2'], factory=warn",
                      "slavenames=['s1', 's2'] + ['w%d' % i for i in range("
                      f"{CLAIMERS})], factory=warn")
    m = make_master(cfg)
    with m.db.write() as conn:
        sync_builders(conn, m.config)
        sids = {f"w{i}": es.slave_connected(conn, f"w{i}", {}) for i in range(CLAIMERS)}
    for _ in range(REQUESTS):
        force(m, "warn")
    got: dict[str, list] = {name: [] for name in sids}
    errors: list[BaseException] = []
    barrier = threading.Barrier(CLAIMERS)

    def worker(name: str) -> None:
        try:
            barrier.wait()
            while True:
                with m.db.write() as conn:
                    cb = eb.claim_build_request(conn, m.config, name, sids[name])
                if cb is None:
                    return
                got[name].append(cb)
                time.sleep(0.002)  # a real worker goes away to build before claiming again
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in sids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    claimed = [cb for lst in got.values() for cb in lst]
    assert len(claimed) == REQUESTS
    assert sorted(cb.number for cb in claimed) == list(range(REQUESTS))
    with m.db.read() as conn:
        rows = conn.execute(sa.select(buildrequests.c.id, buildrequests.c.claimed_by)).all()
        nbuilds = conn.execute(sa.select(sa.func.count()).select_from(builds)).scalar_one()
        per_request = conn.execute(
            sa.select(builds.c.buildrequestid, sa.func.count())
            .group_by(builds.c.buildrequestid)).all()
    assert all(r.claimed_by is not None for r in rows)
    assert nbuilds == REQUESTS
    assert all(n == 1 for _brid, n in per_request)
    assert sum(1 for lst in got.values() if lst) > 1  # the work really was shared
