"""Buildsets: one request for a set of builders to build one set of sources."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.connection import inserted_id
from bbweb.db.schema import (
    buildrequests,
    buildset_properties,
    buildset_sourcestamps,
    buildsets,
    sourcestamp_changes,
    sourcestamps,
)
from bbweb.engine import events, txcache
from bbweb.engine.builders import builder_ids, sync_builders
from bbweb.mastercfg.master import MasterConfig
from bbweb.values.results import worst_status


class BuildsetError(ValueError):
    """A buildset that names unknown builders or has no builders at all."""


# Statements built once (building one per call costs SQLAlchemy more than running it).
_INSERT_SOURCESTAMP = sourcestamps.insert()
_INSERT_SOURCESTAMP_CHANGES = sourcestamp_changes.insert()
_INSERT_BUILDSET = buildsets.insert()
_INSERT_BUILDSET_SOURCESTAMPS = buildset_sourcestamps.insert()
_INSERT_BUILDSET_PROPERTIES = buildset_properties.insert()
_INSERT_BUILDREQUEST = buildrequests.insert()
_BUILDER_IDS = "builder_ids"  # the transaction's memory (txcache) of name -> builder row id


def create_sourcestamp(conn: Connection, *, branch: str | None = None,
                       revision: str | None = None, repository: str = "", project: str = "",
                       codebase: str = "", changeids: list[int] | None = None,
                       patch: dict[str, Any] | None = None) -> int:
    """Store one source stamp and link the changes it was made from."""
    patch = patch or {}
    ssid = inserted_id(conn.execute(_INSERT_SOURCESTAMP, {
        "branch": branch, "revision": revision, "repository": repository or "",
        "project": project or "", "codebase": codebase or "",
        "patch_level": patch.get("level"), "patch_body": patch.get("body"),
        "patch_subdir": patch.get("subdir"), "patch_author": patch.get("author"),
        "patch_comment": patch.get("comment"),
    }))
    if changeids:
        conn.execute(_INSERT_SOURCESTAMP_CHANGES,
                     [{"sourcestampid": ssid, "changeid": c} for c in sorted(set(changeids))])
    return int(ssid)


def create_buildset(conn: Connection, cfg: MasterConfig, *, sourcestampids: list[int],
                    builder_names: list[str], reason: str, scheduler: str | None = None,
                    properties: dict[str, tuple[Any, str]] | None = None,
                    external_idstring: str | None = None, priority: int = 0,
                    now: float | None = None) -> tuple[int, dict[str, int]]:
    """Create a buildset with one build request per builder.

    ``properties`` maps name -> (value, source). Returns (buildsetid, {builder: brid}).
    """
    if not builder_names:
        raise BuildsetError("a buildset needs at least one builder")
    unknown = [b for b in builder_names if b not in cfg.builders]
    if unknown:
        raise BuildsetError(f"unknown builder(s): {', '.join(unknown)}")
    now = time.time() if now is None else now
    bsid = inserted_id(conn.execute(_INSERT_BUILDSET, {
        "external_idstring": external_idstring, "reason": reason or "",
        "scheduler": scheduler, "submitted_at": now, "complete": False,
    }))
    conn.execute(_INSERT_BUILDSET_SOURCESTAMPS,
                 [{"buildsetid": bsid, "sourcestampid": s} for s in sourcestampids])
    if properties:
        conn.execute(_INSERT_BUILDSET_PROPERTIES, [
            {"buildsetid": bsid, "name": k, "value": json.dumps(v), "source": src}
            for k, (v, src) in properties.items()])
    memory = txcache.of(conn)
    ids = memory.get(_BUILDER_IDS)
    if ids is None or any(name not in ids for name in builder_names):
        ids = builder_ids(conn, cfg)
        if any(name not in ids for name in builder_names):
            ids = sync_builders(conn, cfg)
        memory[_BUILDER_IDS] = ids
    brids: dict[str, int] = {}
    seen: set[str] = set()
    for name in builder_names:
        if name in seen:
            continue
        seen.add(name)
        brid = inserted_id(conn.execute(_INSERT_BUILDREQUEST, {
            "buildsetid": bsid, "builderid": ids[name], "priority": priority,
            "submitted_at": now}))
        brids[name] = int(brid)
        events.emit(conn, "buildrequest.new", brid=int(brid), buildsetid=int(bsid),
                    builder=name)
    events.emit(conn, "buildset.new", buildsetid=int(bsid), builders=sorted(brids),
                reason=reason, scheduler=scheduler)
    return int(bsid), brids


def maybe_complete_buildset(conn: Connection, buildsetid: int,
                            now: float | None = None) -> bool:
    """Mark the buildset complete once every request in it is; returns True if it did."""
    rows = conn.execute(sa.select(buildrequests.c.complete, buildrequests.c.results)
                        .where(buildrequests.c.buildsetid == buildsetid)).all()
    if not rows or not all(r.complete for r in rows):
        return False
    result = None
    for r in rows:
        result = worst_status(result, r.results)
    now = time.time() if now is None else now
    updated = conn.execute(buildsets.update()
                           .where(buildsets.c.id == buildsetid, buildsets.c.complete.is_(False))
                           .values(complete=True, complete_at=now, results=result)).rowcount
    if updated:
        events.emit(conn, "buildset.complete", buildsetid=buildsetid, results=result)
    return bool(updated)
