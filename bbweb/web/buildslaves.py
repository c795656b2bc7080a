"""``/buildslaves`` and ``/buildslaves/X``: the workers, their health and their builds.

bbweb keeps no history of slave connections (the ``slaves`` table holds the
current connection only), so 0.8's "connections in the last hour" count is replaced by
when the current connection started; see ``docs/compat.md``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from bbweb.plugins.site import site
from bbweb.status import overview, queries
from bbweb.status.naming import natural_key
from bbweb.status.records import SlaveInfo
from bbweb.web.builders import METHODS
from bbweb.web.helpers import int_arg, not_found, page_root, safe_href
from bbweb.web.rendering import render_page

bp = Blueprint("buildslaves", __name__)

DEFAULT_NUMBUILDS = 10
# what a slave's access_uri may link to: web, mail and remote-access schemes, never script
ACCESS_SCHEMES = frozenset({"", "http", "https", "ftp", "ftps", "sftp", "mailto", "ssh",
                            "telnet", "vnc", "rdp", "spice", "irc", "ircs"})


def slave_status(slave: SlaveInfo, running: int) -> tuple[str, str]:
    """(css class, text) of the Status column."""
    if not slave.connected:
        return "offline", "Not connected"
    if running:
        return "building", f"Running {running} build(s)"
    if slave.paused:
        return "paused", "Paused"
    return "idle", "Idle"


@bp.route("/buildslaves", methods=METHODS)
@bp.route("/buildslaves/", methods=METHODS)
def buildslaves() -> Response:
    s = site()
    cfg = s.config
    with s.db.read() as conn:
        slaves = queries.get_slaves(conn, cfg)
        running = overview.running_by_slave(conn)
    rows = []
    for name in sorted(slaves, key=natural_key):
        slave = slaves[name]
        css, text = slave_status(slave, len(running.get(name, [])))
        rows.append({"slave": slave, "builders": cfg.builders_for_slave(name),
                     "css": css, "status": text})
    return render_page("buildslaves.html", "BuildSlaves", slaves=rows,
                       show_builders=request.args.get("no_builders", "") != "1",
                       to_root=page_root())


def _info_rows(info: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted(((str(k), v) for k, v in info.items()), key=lambda kv: kv[0])


@bp.route("/buildslaves/<path:subpath>", methods=METHODS)
def buildslave(subpath: str) -> Response:
    s = site()
    cfg = s.config
    name = subpath if subpath in cfg.slaves else subpath.rstrip("/")
    if name not in cfg.slaves:
        return not_found(f"No such slave {name!r}.")
    numbuilds = int_arg("numbuilds", DEFAULT_NUMBUILDS)
    builder_names = cfg.builders_for_slave(name)
    with s.db.read() as conn:
        slave = queries.get_slaves(conn, cfg, [name])[name]
        current: list[Any] = []
        recent: list[Any] = []
        if slave.id is not None:
            current = queries.running_builds(conn, slaveids=[slave.id])
            rows = queries.builder_rows(conn, builder_names)
            recent = overview.slave_recent_builds(conn, slave.id,
                                                  [b.id for b in rows.values()], numbuilds)
            overview.load_table_details(conn, recent)
    return render_page(
        "buildslave.html", f"Buildbot: {name}", slave=slave, builders=builder_names,
        current=overview.build_rows(current), recent=overview.build_rows(recent),
        numbuilds=numbuilds, info_rows=_info_rows(slave.info),
        access_href=safe_href(slave.access_uri, ACCESS_SCHEMES),
        to_root=page_root())
