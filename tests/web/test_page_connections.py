"""The builder page, a build page and the waterfall read everything they show in one
transaction: on PostgreSQL each extra transaction is a pool checkout with a ping and a
BEGIN/COMMIT, round trips that queue behind other work when the server is busy. The
parts that used to come from transactions of their own (the live stream position, the
recently cancelled requests, the slaves' ping status) are still on the pages."""

from __future__ import annotations

from bbweb.engine import actions
from bbweb.engine.actions_slaves import ping_slaves
from bbweb.engine.events import latest_event_id
from bbweb.engine.slaves import slave_connected
from tests.conftest import DEFAULT_CFG
from tests.support.history import claim, force, run
from tests.support.querycount import checkouts, counting

CFG = DEFAULT_CFG + ("c['schedulers'].append(ForceScheduler(name='force', "
                     "builderNames=['runtests']))\n")


def test_builder_build_and_waterfall_pages_use_one_connection(make_master):
    master = make_master(CFG)
    force(master, "runtests")
    build = claim(master, "slave1", 1000.0)
    run(master, build.buildid, {}, 1001.0)
    force(master, "runtests", reason="not wanted")
    with master.db.write() as conn:
        (brid,) = actions.pending_request_ids(conn)
        actions.cancel_request(conn, brid, "alice", "duplicate")
        slave_connected(conn, "slave1", {})
        ping_slaves(conn, ["slave1"], "bob")
    app = master.app()
    client = app.test_client()
    pages = {}
    for url in ("/builders/runtests", "/builders/runtests/builds/0", "/waterfall"):
        client.get(url)  # warm caches that are read once per process
        with checkouts(app) as taken, counting(app) as statements:
            resp = client.get(url)
            html = resp.get_data(as_text=True)
        assert resp.status_code == 200, url
        assert len(taken) == 1, (url, len(taken), statements)
        pages[url] = html
    builder = pages["/builders/runtests"]
    assert f"request {brid} (submitted" in builder and "by alice: " in builder
    assert "duplicate" in builder
    assert "by bob:" in builder and "waiting for the answer" in builder
    # the stream position is the newest event when the page was read
    with master.db.read() as conn:
        newest = latest_event_id(conn)
    assert newest > 0
    for url in ("/builders/runtests", "/waterfall"):
        assert f'data-live-after="{newest}"' in pages[url], url
