"""Scheduler timers fired by the daemon: treeStableTimer."""

from __future__ import annotations

import time

import sqlalchemy as sa

from bbweb.db.schema import (
    builders,
    buildrequests,
    buildset_sourcestamps,
    buildsets,
    scheduler_changes,
    sourcestamp_changes,
)
from bbweb.engine.changes import ChangeInput, add_change
from tests.daemon.conftest import lock_holder, wait_for

STABLE = 2  # seconds

TIMER_CFG = f"""
from bbweb.config import *
c = BuildmasterConfig = {{}}
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('slave1', 'pw1')]
f = BuildFactory()
f.addStep(ShellCommand(command=['true'], name='t'))
c['builders'] = [BuilderConfig(name='runtests', slavenames=['slave1'], factory=f),
                 BuilderConfig(name='docs', slavenames=['slave1'], factory=f),
                 BuilderConfig(name='other', slavenames=['slave1'], factory=f)]
c['schedulers'] = [SingleBranchScheduler(name='stable', branch=None,
                                         treeStableTimer={STABLE},
                                         builderNames=['runtests', 'docs'])]
c['status'] = []
"""


def _buildsets(m):  # type: ignore[no-untyped-def]
    with m.db.read() as conn:
        return conn.execute(sa.select(buildsets).order_by(buildsets.c.id)).all()


def test_tree_stable_timer_fires_once_after_the_last_change(make_master, daemons):
    m = make_master(TIMER_CFG)
    d = daemons(m.basedir, holder="d")
    wait_for(lambda: lock_holder(m) == "d", what="the daemon to take the lock")

    # The first change arrived 1.5s ago: without a restart its timer would fire 0.5s
    # from now; the second change restarts it for another STABLE seconds.
    with m.db.write() as conn:
        c1 = add_change(conn, m.config, ChangeInput(author="alice", files=["a.c"],
                                                    revision="r1"), now=time.time() - 1.5)
    t2 = time.time()
    with m.db.write() as conn:
        c2 = add_change(conn, m.config, ChangeInput(author="bob", files=["b.c"],
                                                    revision="r2"), now=t2)
    assert _buildsets(m) == []  # the tree is not stable yet

    wait_for(lambda: _buildsets(m), what="the stable-tree timer to fire")
    with m.db.read() as conn:
        waiting = conn.execute(sa.select(scheduler_changes)).all()
    assert waiting == []  # nothing left that could fire again
    assert d.stop() == 0

    (bs,) = _buildsets(m)
    assert bs.scheduler == "stable"
    assert bs.submitted_at >= t2 + STABLE  # the second change restarted the timer
    with m.db.read() as conn:
        names = sorted(conn.execute(
            sa.select(builders.c.name).join(buildrequests,
                                            buildrequests.c.builderid == builders.c.id)
            .where(buildrequests.c.buildsetid == bs.id)).scalars())
        changeids = sorted(conn.execute(
            sa.select(sourcestamp_changes.c.changeid)
            .join(buildset_sourcestamps, buildset_sourcestamps.c.sourcestampid
                  == sourcestamp_changes.c.sourcestampid)
            .where(buildset_sourcestamps.c.buildsetid == bs.id)).scalars())
    assert names == ["docs", "runtests"]
    assert changeids == [c1, c2]


def test_stand_by_fires_timers_after_taking_over(make_master, daemons):
    m = make_master(TIMER_CFG)
    a = daemons(m.basedir, holder="active")
    wait_for(lambda: lock_holder(m) == "active", what="the first daemon to take the lock")
    b = daemons(m.basedir, holder="standby")
    with m.db.write() as conn:
        add_change(conn, m.config, ChangeInput(author="alice", files=["a.c"]),
                   now=time.time() - STABLE - 1)
    wait_for(lambda: _buildsets(m), what="the active daemon to fire the timer")
    assert a.stop() == 0
    wait_for(lambda: lock_holder(m) == "standby", what="the stand-by to take over")
    with m.db.write() as conn:
        add_change(conn, m.config, ChangeInput(author="bob", files=["b.c"]),
                   now=time.time() - STABLE - 1)
    wait_for(lambda: len(_buildsets(m)) == 2, what="the stand-by to fire the timer")
    assert b.stop() == 0
    assert len(_buildsets(m)) == 2
