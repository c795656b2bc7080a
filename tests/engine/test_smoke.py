from bbweb.engine import slaves
from bbweb.engine.builds import claim_build_request, finish_step, next_step
from bbweb.engine.changes import ChangeInput, add_change


def test_flow(master):
    cfg = master.config
    from bbweb.engine.builders import sync_builders
    with master.db.write() as conn:
        sync_builders(conn, cfg)
        add_change(conn, cfg, ChangeInput(author="alice", files=["a.c"], revision="abc"))
    with master.db.write() as conn:
        sid = slaves.slave_connected(conn, "slave1", {"host": "h"})
        b = claim_build_request(conn, cfg, "slave1", sid)
    assert b is not None
    with master.db.write() as conn:
        spec = next_step(conn, cfg, b.buildid)
    assert spec["command"] == ["echo", "hello"]
    with master.db.write() as conn:
        finish_step(conn, cfg, spec["id"], 0)
        assert next_step(conn, cfg, b.buildid) is None
