"""Upgrading a database of schema 0005 (before leases) while a build is running on it: the
build and its claim carry over, and the worker's next hello ends it like any other."""

from __future__ import annotations

import json
import time

import sqlalchemy as sa
from alembic import command

from bbweb.db.connection import Database
from bbweb.db.migrate import alembic_config, upgrade
from bbweb.db.schema import (
    builders,
    buildrequests,
    builds,
    buildsets,
    event_counter,
    slaves,
    worker_requests,
)
from bbweb.status.builder import EXCEPTION
from tests.conftest import DEFAULT_CFG, write_master_cfg


def _upgrade_to(db: Database, revision: str) -> None:
    cfg = alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_upgrade_from_0005_keeps_running_builds_and_claims(tmp_path, db_url):
    db = Database(db_url)
    try:
        _upgrade_to(db, "0005")
        now = time.time()
        with db.write() as conn:
            conn.execute(event_counter.insert().values(id=1, value=0))
            conn.execute(builders.insert().values(id=1, name="runtests", next_number=1))
            conn.execute(slaves.insert().values(id=1, name="slave1", info="{}", connected=True,
                                                last_seen=now))
            conn.execute(buildsets.insert().values(id=1, reason="r", submitted_at=now,
                                                   complete=False))
            conn.execute(buildrequests.insert().values(id=1, buildsetid=1, builderid=1,
                                                       submitted_at=now, claimed_by=1,
                                                       claimed_at=now))
            conn.execute(builds.insert().values(id=1, builderid=1, number=0,
                                                buildrequestid=1, slaveid=1, started_at=now,
                                                text="[]"))
    finally:
        db.dispose()

    upgrade(db_url)
    write_master_cfg(tmp_path / "m", DEFAULT_CFG, db_url)
    from bbweb.app import create_app

    app = create_app(tmp_path / "m", testing=True)
    db = app.extensions["bbweb"].db
    try:
        with db.read() as conn:
            req = conn.execute(sa.select(buildrequests)).one()
            build = conn.execute(sa.select(builds)).one()
            assert conn.execute(sa.select(worker_requests)).all() == []
        # an upgraded claim is a confirmed one, not a lease that could run out
        assert req.claimed_by == 1 and req.lease_expires_at is None
        assert build.worker_session is None and build.finished_at is None

        client = app.test_client()
        resp = client.post("/api/worker/hello", auth=("slave1", "pw1"),
                           json={"info": {}, "session": "new", "running": []})
        assert resp.status_code == 200 and resp.get_json()["ended"] == [1]
        with db.read() as conn:
            build = conn.execute(sa.select(builds)).one()
        assert build.results == EXCEPTION
        assert json.loads(build.text) == ["exception", "slave", "lost"]
        lease = client.post("/api/worker/claim", auth=("slave1", "pw1"),
                            json={"wait": 0, "seq": 1}).get_json()["lease"]
        assert lease["request"] == 1
    finally:
        db.dispose()
