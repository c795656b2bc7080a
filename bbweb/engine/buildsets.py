"""Buildsets: one request for a set of builders to build one set of sources."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.connection import insert_ids, inserted_id
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
    _check_builders(cfg, builder_names)
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
    ids = _builder_row_ids(conn, cfg, builder_names)
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


def _check_builders(cfg: MasterConfig, builder_names: list[str]) -> None:
    if not builder_names:
        raise BuildsetError("a buildset needs at least one builder")
    unknown = [b for b in builder_names if b not in cfg.builders]
    if unknown:
        raise BuildsetError(f"unknown builder(s): {', '.join(unknown)}")


def _builder_row_ids(conn: Connection, cfg: MasterConfig, names: list[str]) -> dict[str, int]:
    """name -> builder row id, read once per transaction (rows for configured builders
    that have none yet are made)."""
    memory = txcache.of(conn)
    ids = memory.get(_BUILDER_IDS)
    if ids is None or any(name not in ids for name in names):
        ids = builder_ids(conn, cfg)
        if any(name not in ids for name in names):
            ids = sync_builders(conn, cfg)
        memory[_BUILDER_IDS] = ids
    return ids


@dataclass
class SourceStampPlan:
    """A source stamp to store, and the changes it is made from."""

    branch: str | None
    revision: str | None
    repository: str
    project: str
    codebase: str
    changeids: list[int]


@dataclass
class BuildsetPlan:
    """A buildset to store with :func:`create_buildsets` (see :func:`create_buildset`)."""

    sourcestamps: list[SourceStampPlan]
    builder_names: list[str]
    reason: str
    scheduler: str | None
    properties: dict[str, tuple[Any, str]]


def create_buildsets(conn: Connection, cfg: MasterConfig, plans: list[BuildsetPlan],
                     now: float) -> list[int]:
    """Store the buildsets with their source stamps and build requests, and emit their
    events, exactly as :func:`create_sourcestamp` and :func:`create_buildset` called for
    each plan in turn would (the same rows, ids and events in the same order), with one
    statement per table for all of them; returns the buildsets' ids."""
    if not plans:
        return []
    for plan in plans:
        _check_builders(cfg, plan.builder_names)
    stamps = [stamp for plan in plans for stamp in plan.sourcestamps]
    ssids = insert_ids(conn, sourcestamps, [{
        "branch": st.branch, "revision": st.revision, "repository": st.repository or "",
        "project": st.project or "", "codebase": st.codebase or "", "patch_level": None,
        "patch_body": None, "patch_subdir": None, "patch_author": None,
        "patch_comment": None} for st in stamps])
    links = [{"sourcestampid": ssid, "changeid": c}
             for ssid, st in zip(ssids, stamps, strict=True) for c in sorted(set(st.changeids))]
    if links:
        conn.execute(_INSERT_SOURCESTAMP_CHANGES, links)
    bsids = insert_ids(conn, buildsets, [{
        "external_idstring": None, "reason": plan.reason or "", "scheduler": plan.scheduler,
        "submitted_at": now, "complete": False} for plan in plans])
    plan_ssids: list[list[int]] = []
    start = 0
    for plan in plans:
        plan_ssids.append(ssids[start:start + len(plan.sourcestamps)])
        start += len(plan.sourcestamps)
    conn.execute(_INSERT_BUILDSET_SOURCESTAMPS, [
        {"buildsetid": bsid, "sourcestampid": s}
        for bsid, own in zip(bsids, plan_ssids, strict=True) for s in own])
    props = [{"buildsetid": bsid, "name": k, "value": json.dumps(v), "source": src}
             for bsid, plan in zip(bsids, plans, strict=True)
             for k, (v, src) in plan.properties.items()]
    if props:
        conn.execute(_INSERT_BUILDSET_PROPERTIES, props)
    ids = _builder_row_ids(conn, cfg, [n for plan in plans for n in plan.builder_names])
    wanted = [(bsid, list(dict.fromkeys(plan.builder_names)))
              for bsid, plan in zip(bsids, plans, strict=True)]
    brids = insert_ids(conn, buildrequests, [
        {"buildsetid": bsid, "builderid": ids[name], "priority": 0, "submitted_at": now}
        for bsid, names in wanted for name in names])
    position = 0
    for (bsid, names), plan in zip(wanted, plans, strict=True):
        for name in names:
            events.emit(conn, "buildrequest.new", brid=brids[position], buildsetid=bsid,
                        builder=name)
            position += 1
        events.emit(conn, "buildset.new", buildsetid=bsid, builders=sorted(names),
                    reason=plan.reason, scheduler=plan.scheduler)
    return bsids


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
