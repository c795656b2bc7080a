"""Running builds show an ETA from the builder's recent successful builds."""

from __future__ import annotations

import re
import time

import sqlalchemy as sa

from bbweb.db.schema import steps
from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.force import force_build


def start(master, sid: int, t: float) -> int:
    with master.db.write() as conn:
        force_build(conn, master.config, ["docs"], reason="eta", owner="t", scheduler=None)
    with master.db.write() as conn:
        claimed = eb.claim_build_request(conn, master.config, "slave1", sid, now=t)
        eb.next_step(conn, master.config, claimed.buildid, now=t)
    return claimed.buildid


def finish(master, buildid: int, t: float, rc: int = 0) -> None:
    with master.db.write() as conn:
        running = conn.execute(sa.select(steps.c.id).where(
            steps.c.buildid == buildid, steps.c.started_at.isnot(None),
            steps.c.finished_at.is_(None))).scalars().all()
        for stepid in running:
            eb.finish_step(conn, master.config, stepid, rc, now=t)
        assert eb.next_step(conn, master.config, buildid, now=t) is None


def test_eta_from_recent_successful_builds(master, client):
    now = time.time()
    with master.db.write() as conn:
        sync_builders(conn, master.config)
        sid = es.slave_connected(conn, "slave1", {})
    # a failed build does not count; two successful ones took 100 s and 140 s
    finish(master, start(master, sid, now - 1000), now - 990, rc=1)
    finish(master, start(master, sid, now - 900), now - 800)
    finish(master, start(master, sid, now - 700), now - 560)
    start(master, sid, now - 40)  # build #3, running for 40 s of an expected 120

    def eta_seconds(html: str, before: str = "") -> int:
        """The seconds part of the first "[1 mins, N secs]" ETA after ``before``."""
        found = re.search(re.escape(before) + r"ETA: \d\d:\d\d:\d\d \[1 mins, (\d+) secs\]",
                          html)
        assert found, html
        return int(found.group(1))

    def expected() -> range:
        # 120 s expected, 40 s run at ``now``: 80 s left then, less the time the test has
        # taken since (seconds on a loaded machine), give or take the rounding
        left = 80 - (time.time() - now)
        return range(int(left) - 1, 82)

    builder = client.get("/builders/docs").get_data(as_text=True)
    current = builder.split("<h2>Current Builds:</h2>")[1].split("</ul>")[0]
    assert eta_seconds(current) + 60 in expected()
    build = client.get("/builders/docs/builds/3").get_data(as_text=True)
    assert eta_seconds(build) + 60 in expected()
    summary = client.get("/builders").get_data(as_text=True)
    assert eta_seconds(summary, 'builds/3">#3</a> ') + 60 in expected()


def test_no_eta_without_history_and_overdue_builds(master, client):
    now = time.time()
    with master.db.write() as conn:
        sync_builders(conn, master.config)
        sid = es.slave_connected(conn, "slave1", {})
    start(master, sid, now - 10)
    assert "ETA: no estimate" in client.get("/builders/docs/builds/0").get_data(as_text=True)
    finish(master, start(master, sid, now - 500), now - 495)  # #1 took 5 s
    start(master, sid, now - 100)  # #2 has run for 100 s
    assert "ETA: any moment now" in client.get("/builders/docs/builds/2").get_data(
        as_text=True)
