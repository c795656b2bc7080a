"""Stored changes as the schedulers and change filters see them: a dict with Buildbot's
attribute names (``who``, ``comments``, ``files``, ``properties``, …)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import change_files, change_properties, changes


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
    table regardless of how many."""
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
        props.setdefault(r.changeid, {})[r.name] = json.loads(r.value)
    return [change_dict(r, files.get(r.changeid, []), props.get(r.changeid, {}))
            for r in rows]
