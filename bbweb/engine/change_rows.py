"""Stored changes as the schedulers and change filters see them: a dict with Buildbot's
attribute names (``who``, ``comments``, ``files``, ``properties``, …)."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import change_files, change_properties, changes
from bbweb.values.validation import ValueRefused, decode_stored

log = logging.getLogger("bbweb.engine")


def change_dict(row: Any, files: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """The change as schedulers and filters see it (Buildbot's attribute names)."""
    return {
        "number": row.changeid,
        "changeid": row.changeid,
        "who": row.author,
        "author": row.author,
        "comments": row.comments,
        "files": files,
        "revision": row.revision,
        "when": row.when_timestamp,
        "branch": row.branch,
        "category": row.category,
        "revlink": row.revlink,
        "properties": properties,
        "repository": row.repository,
        "project": row.project,
        "codebase": row.codebase,
        "src": row.src,
    }


def load_changes(conn: Connection, changeids: list[int]) -> list[dict[str, Any]]:
    """Changes (with files and properties) for the given ids, in id order; one query per
    table regardless of how many. A property row an older version stored that the engine
    cannot carry (not JSON, nested too deeply) is left out here with the reason logged; a
    build of the change refuses it in its own log."""
    if not changeids:
        return []
    rows = conn.execute(sa.select(changes).where(changes.c.changeid.in_(changeids))
                        .order_by(changes.c.changeid)).all()
    files: dict[int, list[str]] = {}
    for r in conn.execute(sa.select(change_files.c.changeid, change_files.c.filename)
                          .where(change_files.c.changeid.in_(changeids))
                          .order_by(change_files.c.id)):
        files.setdefault(r.changeid, []).append(r.filename)
    props: dict[int, dict[str, Any]] = {}
    for r in conn.execute(sa.select(change_properties)
                          .where(change_properties.c.changeid.in_(changeids))
                          .order_by(change_properties.c.id)):
        what = f"change {r.changeid} property {r.name!r}"
        try:
            props.setdefault(r.changeid, {})[r.name] = decode_stored(r.value, what)
        except ValueRefused as exc:
            log.warning("%s; the schedulers see the change without it", exc)
    return [change_dict(r, files.get(r.changeid, []), props.get(r.changeid, {}))
            for r in rows]
