"""Building history through the engine in tests, as a worker would: force or change →
claim → each step (log, finish) → the build's result. Times are explicit so pages and
documents can be asserted exactly."""

from __future__ import annotations

from typing import Any

from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.force import force_build

DEFAULT_LOG = [("h", "$ make\n"), ("o", "ok\n")]


def force(master: Any, builder: str, **kw: Any) -> None:
    """A build request for ``builder`` from the ``force`` scheduler."""
    with master.db.write() as conn:
        force_build(conn, master.config, [builder], scheduler="force", **kw)


def claim(master: Any, slave: str, t: float) -> Any:
    """``slave`` claims the oldest request it can run, at time ``t`` (the slave row is
    created if it never connected)."""
    with master.db.write() as conn:
        sid = es.slave_id(conn, slave) or es.ensure_slave(conn, slave)
        claimed = eb.claim_build_request(conn, master.config, slave, sid, now=t)
    assert claimed is not None
    return claimed


def run(master: Any, buildid: int, rcs: dict[str, int], t: float,
        props: dict[str, Any] | None = None, log: list | None = None) -> float:
    """Play the worker for a whole build: each step gets rc from ``rcs`` (default 0),
    logs ``log``, and takes one second, two apart. Returns the time the build ended."""
    cfg = master.config
    while True:
        with master.db.write() as conn:
            spec = eb.next_step(conn, cfg, buildid, now=t)
        if spec is None:
            return t
        with master.db.write() as conn:
            eb.append_step_log(conn, cfg, spec["id"], "stdio", log or DEFAULT_LOG)
            eb.finish_step(conn, cfg, spec["id"], rcs.get(spec["name"], 0),
                           properties=props, now=t + 1)
        t += 2
