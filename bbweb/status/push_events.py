"""The status events Buildbot 0.8's StatusPush sent, read from the event outbox.

0.8 pushed one packet per status callback (``buildStarted``, ``stepFinished``,
``slaveConnected``…), each carrying the ``asDict()`` of the object concerned. bbweb has no
callbacks: its state changes are rows of the ``events`` outbox. :func:`status_events`
turns one outbox event into the 0.8 events it stands for, in 0.8's order and with 0.8's
payload shapes (the documents of :mod:`bbweb.status.jsondocs`, the same as ``/json``).

A packet may be made long after its event (a receiver that was down for an hour), so the
build in ``buildStarted``, ``stepStarted`` and ``stepFinished`` is shown as it was at that
event: steps after it not started, the build without result or end time. Steps run one
after another, so this is exact for the steps. A builder's state in
``builderChangedState`` follows from its event (``building`` when a build starts; when one
ends ``building`` if another build of the builder overlapped it, else ``idle``; when a
slave connects ``idle``). When a slave disconnects its builders are ``offline`` unless
another of their slaves is connected when the packet is made.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import buildrequests, builds, buildsets, consumer_cursors, events
from bbweb.mastercfg.master import MasterConfig
from bbweb.status import jsondocs, queries
from bbweb.status.jsontree import JsonRequest
from bbweb.status.records import BuildInfo

Doc = dict[str, Any]
StatusEvent = tuple[str, Doc]

OWN_START = "push.started"
OWN_STOP = "push.stopped"
"""Kinds a push notifier emits itself (payload ``notifier``: its name) when it starts and
stops following the outbox, so that 0.8's ``start`` and ``shutdown`` packets get ids from
the outbox like every other packet."""

KINDS = frozenset({
    OWN_START, OWN_STOP, "buildrequest.new", "buildset.new", "builder.removed",
    "build.started", "step.started", "step.finished", "build.finished", "change.new",
    "slave.connected", "slave.disconnected", "slave.paused", "slave.unpaused",
})
"""The outbox kinds that stand for a 0.8 status event."""

EVENT_NAMES = ("start", "shutdown", "requestSubmitted", "buildsetSubmitted", "builderAdded",
               "builderChangedState", "buildStarted", "stepStarted", "stepFinished",
               "buildFinished", "buildedRemoved", "changeAdded", "slaveConnected",
               "slaveDisconnected", "slavePaused", "slaveUnpaused")
"""The event names 0.8 really delivered (``buildedRemoved`` is 0.8's spelling)."""


def status_events(conn: Connection, cfg: MasterConfig, event: dict[str, Any],
                  notifier: str, builds_read: dict[int, BuildInfo] | None = None
                  ) -> list[StatusEvent]:
    """The ``(event name, payload)`` pairs 0.8 pushed for one outbox event; ``notifier``
    picks the start and stop events that are this notifier's own. ``builds_read`` keeps
    the builds read, for the other events of the same build in one transaction."""
    kind = event["kind"]
    payload = event["payload"]
    req = JsonRequest(conn, cfg)
    if kind in (OWN_START, OWN_STOP):
        if payload.get("notifier") != notifier:
            return []
        status = {"title": cfg.title, "titleURL": cfg.titleURL,
                  "buildbotURL": cfg.buildbotURL}
        if kind == OWN_STOP:
            return [("shutdown", {"status": status})]
        # 0.8's status receiver was told of every builder when it subscribed
        found: list[StatusEvent] = [("start", {"status": status})]
        docs = req.builder_docs(cfg.builders)
        for name, doc in docs.items():
            found.append(("builderAdded", {"builderName": name, "builder": doc}))
            found.append(("builderChangedState", {"builderName": name,
                                                  "state": doc["state"]}))
        return found
    if kind == "buildrequest.new":
        request = _request_doc(conn, int(payload["brid"]), payload.get("builder"))
        return [] if request is None else [("requestSubmitted", {"request": request})]
    if kind == "buildset.new":
        buildset = _buildset_doc(conn, int(payload["buildsetid"]))
        return [] if buildset is None else [("buildsetSubmitted", {"buildset": buildset})]
    if kind == "builder.removed":
        return [("buildedRemoved", {"builderName": payload["builder"]})]
    if kind == "change.new":
        change = queries.get_change(conn, int(payload["changeid"]))
        return [] if change is None else [("changeAdded",
                                           {"change": jsondocs.change_doc(change)})]
    if kind.startswith("slave."):
        return _slave_events(req, kind, payload)
    return _build_events(req, kind, payload, {} if builds_read is None else builds_read)


def read_builds(conn: Connection, batch: list[dict[str, Any]]) -> dict[int, BuildInfo]:
    """The builds the build and step events of ``batch`` are about, read together (for
    :func:`status_events`' ``builds_read``)."""
    ids = {int(ev["payload"]["buildid"]) for ev in batch
           if ev["kind"].startswith(("build.", "step.")) and "buildid" in ev["payload"]}
    return queries.builds_by_id(conn, sorted(ids), details=True) if ids else {}


def _build_events(req: JsonRequest, kind: str, payload: Doc,
                  builds_read: dict[int, BuildInfo]) -> list[StatusEvent]:
    buildid = int(payload["buildid"])
    if buildid not in builds_read:
        found = queries.builds_by_id(req.conn, [buildid], details=True).get(buildid)
        if found is None:
            return []
        builds_read[buildid] = found
    build = builds_read[buildid]
    doc = jsondocs.build_doc(build, req.buildbot_url)
    if kind == "build.started":
        return [("builderChangedState", {"builderName": build.builder, "state": "building"}),
                ("buildStarted", {"build": as_of(doc, None, False)})]
    if kind == "build.finished":
        overlapping = build.finished_at is not None and _overlapping(req.conn, build)
        return [("buildFinished", {"build": doc}),
                ("builderChangedState", {"builderName": build.builder,
                                         "state": "building" if overlapping else "idle"})]
    number = int(payload["number"])
    finished = kind == "step.finished"
    shown = as_of(doc, number, finished)
    step = next((s for s in shown["steps"] if s["step_number"] == number), None)
    if step is None:
        return []
    properties = jsondocs.properties_doc(build.properties)
    return [("stepFinished" if finished else "stepStarted",
             {"properties": properties, "step": step})]


def _slave_events(req: JsonRequest, kind: str, payload: Doc) -> list[StatusEvent]:
    name = payload.get("slave")
    if not isinstance(name, str):
        return []
    builders = req.cfg.builders_for_slave(name) if name in req.cfg.slaves else []
    if kind == "slave.connected":
        doc = req.slave_docs([name]).get(name)
        if doc is None:
            return []
        # as at the event (it may have gone since); "builders" was not in 0.8's asDict
        doc = {k: v for k, v in doc.items() if k != "builders"} | {"connected": True}
        return [("slaveConnected", {"slave": doc}),
                *[("builderChangedState", {"builderName": n, "state": "idle"})
                  for n in builders]]
    if kind == "slave.disconnected":
        return [("slaveDisconnected", {"slavename": name}),
                *[("builderChangedState", {"builderName": n, "state": "offline"
                                           if not set(s.connected_slaves) - {name}
                                           else s.state})
                  for n, s in req.summaries(builders).items()]]
    return [("slavePaused" if kind == "slave.paused" else "slaveUnpaused",
             {"slavename": name})]


def _overlapping(conn: Connection, build: BuildInfo) -> bool:
    """Whether another build of the builder was running when ``build`` finished."""
    found = conn.execute(sa.select(builds.c.id).where(
        builds.c.builderid == build.builderid, builds.c.id != build.id,
        builds.c.started_at <= build.finished_at,
        sa.or_(builds.c.finished_at.is_(None), builds.c.finished_at > build.finished_at))
        .limit(1)).first()
    return found is not None


def as_of(doc: Doc, step_number: int | None, step_finished: bool) -> Doc:
    """A build document as it was when step ``step_number`` started (or finished), or when
    the build started (``step_number`` None): later steps not started, no result yet."""
    steps = []
    for step in doc["steps"]:
        n = step["step_number"]
        if step_number is None or n > step_number:
            step = dict(step, isStarted=False, isFinished=False, times=[None, None],
                        results=[None, []], text=[], logs=[], statistics={}, urls={})
        elif n == step_number and not step_finished:
            text = step["text"] if not step["isFinished"] else [step["name"]]
            step = dict(step, isFinished=False, times=[step["times"][0], None],
                        results=[None, []], text=text, statistics={})
        steps.append(step)
    running = None
    if step_number is not None and not step_finished:
        running = next((s for s in steps if s["step_number"] == step_number), None)
    return dict(doc, steps=steps, currentStep=running, results=None, text=[],
                times=[doc["times"][0], None],
                logs=[lg for s in steps for lg in s["logs"]])


def _request_doc(conn: Connection, brid: int, builder: str | None) -> Doc | None:
    row = conn.execute(sa.select(buildrequests.c.buildsetid, buildrequests.c.submitted_at)
                       .where(buildrequests.c.id == brid)).first()
    if row is None:
        return None
    stamps = queries.buildset_sourcestamps(conn, [row.buildsetid]).get(row.buildsetid, [])
    return {"source": jsondocs.sourcestamp_doc(stamps[0]) if stamps else None,
            "builderName": builder, "submittedAt": row.submitted_at, "builds": []}


def _buildset_doc(conn: Connection, bsid: int) -> Doc | None:
    row = conn.execute(sa.select(buildsets).where(buildsets.c.id == bsid)).first()
    if row is None:
        return None
    return {"bsid": row.id, "external_idstring": row.external_idstring,
            "reason": row.reason, "sourcestampsetid": row.id,
            "submitted_at": str(row.submitted_at),
            # as it was when submitted (the buildset completes later)
            "complete": False, "complete_at": None, "results": None}


def first_time_of(conn: Connection, kind: str, notifier: str) -> float | None:
    """When ``notifier`` first emitted an event of ``kind`` (0.8's ``started``: the
    first start of the push, kept across restarts)."""
    rows = conn.execute(sa.select(events.c.created_at, events.c.payload)
                        .where(events.c.kind == kind).order_by(events.c.id))
    for created_at, payload in rows:
        try:
            if json.loads(payload).get("notifier") == notifier:
                return float(created_at)
        except (ValueError, AttributeError):
            continue
    return None


def saved_cursor(conn: Connection, consumer: str) -> int | None:
    """Where ``consumer`` left off in the outbox, or None if it never ran."""
    value = conn.execute(sa.select(consumer_cursors.c.last_event_id)
                         .where(consumer_cursors.c.consumer == consumer)).scalar()
    return None if value is None else int(value)
