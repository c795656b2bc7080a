"""The build lifecycle, driven by worker calls: claim → next step → log → finish step → …

The master keeps all judgement: which step runs next, whether the build halts
(``haltOnFailure``), how step results combine into the build result (``flunkOnFailure``,
``warnOnFailure``, …). A worker only runs what it is handed. Each transition is one
transaction with its event.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db import wakeup
from bbweb.db.connection import inserted_id
from bbweb.db.schema import (
    build_properties,
    builders,
    buildrequests,
    builds,
    buildset_properties,
    buildset_sourcestamps,
    buildsets,
    change_properties,
    logs,
    sourcestamp_changes,
    sourcestamps,
    steps,
)
from bbweb.engine import events
from bbweb.engine.buildsets import maybe_complete_buildset
from bbweb.engine.logs import append_chunks, append_frames, create_log, finish_log
from bbweb.mastercfg.master import MasterConfig
from bbweb.mastercfg.properties import RenderContext
from bbweb.mastercfg.steps import BuildFactory, BuildStep
from bbweb.values.results import (
    EXCEPTION,
    FAILURE,
    SKIPPED,
    SUCCESS,
    WARNINGS,
    worst_status,
)
from bbweb.values.validation import (
    MAX_CARRIED_DEPTH,
    ValueRefused,
    decode_stored,
    decode_stored_or,
    depth,
)
from bbweb.worker.logframes import Frame

log = logging.getLogger("bbweb.engine")


@dataclass
class ClaimedBuild:
    """What a worker receives when it claims work."""

    buildid: int
    builder: str
    number: int
    builddir: str
    properties: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.buildid, "builder": self.builder, "number": self.number,
                "builddir": self.builddir, "properties": self.properties}


# -- reading what a build is made of -------------------------------------------------------

def build_sourcestamps(conn: Connection, buildrequestid: int) -> list[dict[str, Any]]:
    """The sourcestamps of the request's buildset (one per codebase), with change ids."""
    rows = conn.execute(
        sa.select(sourcestamps)
        .join(buildset_sourcestamps, buildset_sourcestamps.c.sourcestampid == sourcestamps.c.id)
        .join(buildrequests, buildrequests.c.buildsetid == buildset_sourcestamps.c.buildsetid)
        .where(buildrequests.c.id == buildrequestid)
        .order_by(sourcestamps.c.id)
    ).all()
    changeids: dict[int, list[int]] = {r.id: [] for r in rows}
    if rows:  # the change ids of every stamp in one query
        for ssid, changeid in conn.execute(
                sa.select(sourcestamp_changes.c.sourcestampid, sourcestamp_changes.c.changeid)
                .where(sourcestamp_changes.c.sourcestampid.in_(list(changeids)))
                .order_by(sourcestamp_changes.c.changeid)):
            changeids[ssid].append(changeid)
    return [{"ssid": r.id, "branch": r.branch, "revision": r.revision,
             "repository": r.repository, "project": r.project, "codebase": r.codebase,
             "changeids": changeids[r.id]} for r in rows]


def get_properties(conn: Connection, buildid: int) -> dict[str, tuple[Any, str]]:
    """The build's properties (name -> (value, source)). A row an older version stored that
    the engine cannot carry (see :func:`~bbweb.values.validation.decode_stored`) is left
    out, with the reason logged: a step that needs it renders as if it was never set."""
    props: dict[str, tuple[Any, str]] = {}
    for r in conn.execute(sa.select(build_properties)
                          .where(build_properties.c.buildid == buildid)):
        try:
            props[r.name] = (decode_stored(r.value, f"build {buildid} property {r.name!r}"),
                             r.source)
        except ValueRefused as exc:
            log.warning("%s; the build goes on without it", exc)
    return props


def step_text(row: Any) -> list[str]:
    """A step row's text as a list of words; a row an older version stored that is not
    a list of strings (or cannot be decoded) gives what words it has, logged."""
    what = f"step {row.id} text"
    text = decode_stored_or(row.text, [], what)
    if isinstance(text, list) and all(isinstance(t, str) for t in text):
        return text
    log.warning("%s is not a list of words; only its words are used", what)
    return [t for t in text if isinstance(t, str)] if isinstance(text, list) else []


def set_properties(conn: Connection, buildid: int, props: dict[str, tuple[Any, str]]) -> None:
    """Upsert build properties (name -> (value, source))."""
    if not props:
        return
    existing = {r.name for r in conn.execute(
        sa.select(build_properties.c.name).where(build_properties.c.buildid == buildid,
                                                 build_properties.c.name.in_(list(props))))}
    rows = [{"p_name": name, "p_value": json.dumps(value), "p_source": source}
            for name, (value, source) in props.items()]
    new = [r for r in rows if r["p_name"] not in existing]
    changed = [r for r in rows if r["p_name"] in existing]
    if new:  # one statement each, however many properties
        conn.execute(build_properties.insert().values(
            buildid=buildid, name=sa.bindparam("p_name"), value=sa.bindparam("p_value"),
            source=sa.bindparam("p_source")), new)
    if changed:
        conn.execute(build_properties.update().where(
            build_properties.c.buildid == buildid,
            build_properties.c.name == sa.bindparam("p_name"),
        ).values(value=sa.bindparam("p_value"), source=sa.bindparam("p_source")), changed)


def render_context(conn: Connection, build: Any) -> RenderContext:
    props = {k: v for k, (v, _src) in get_properties(conn, build.id).items()}
    ss = {s["codebase"]: s for s in build_sourcestamps(conn, build.buildrequestid)}
    return RenderContext(props, ss)


# -- claiming --------------------------------------------------------------------------------
#
# A claim has two phases. ``lease_build_request`` marks the oldest request a worker can run
# as claimed by it for a short time (``lease_expires_at``); ``start_leased_build`` — the
# worker's confirmation that it received the lease — creates the build. A lease the worker
# never confirms (its answer was lost, the worker died) runs out and the request is
# claimable again, and no build was ever created for it: nothing is left running that no
# worker knows about.

def builders_for_slave(cfg: MasterConfig, slavename: str) -> list[str]:
    return cfg.builders_for_slave(slavename)


def _claimable(now: float) -> Any:
    """Unclaimed, or leased by a worker that never confirmed in time."""
    return sa.or_(buildrequests.c.claimed_at.is_(None),
                  buildrequests.c.lease_expires_at < now)


def has_pending_work(conn: Connection, builder_ids: list[int],
                     now: float | None = None) -> bool:
    """Cheap read-only check before taking the write lock to claim."""
    if not builder_ids:
        return False
    now = time.time() if now is None else now
    return conn.execute(sa.select(buildrequests.c.id).where(
        buildrequests.c.builderid.in_(builder_ids), buildrequests.c.complete.is_(False),
        _claimable(now)).limit(1)).first() is not None


def running_builds_of_slave(conn: Connection, slaveid: int) -> list[int]:
    return [r.id for r in conn.execute(sa.select(builds.c.id).where(
        builds.c.slaveid == slaveid, builds.c.finished_at.is_(None)))]


def leases_of_slave(conn: Connection, slaveid: int, now: float) -> list[int]:
    """Requests leased to the worker and not yet confirmed, whose lease still runs."""
    return [r.id for r in conn.execute(sa.select(buildrequests.c.id).where(
        buildrequests.c.claimed_by == slaveid, buildrequests.c.complete.is_(False),
        buildrequests.c.lease_expires_at >= now))]


def release_expired_leases(conn: Connection, now: float | None = None) -> list[int]:
    """Put requests whose lease ran out unconfirmed back in the queue."""
    now = time.time() if now is None else now
    ids = [r.id for r in conn.execute(sa.select(buildrequests.c.id).where(
        buildrequests.c.lease_expires_at < now, buildrequests.c.complete.is_(False)))]
    if ids:
        conn.execute(buildrequests.update().where(
            buildrequests.c.id.in_(ids), buildrequests.c.lease_expires_at < now,
        ).values(claimed_by=None, claimed_at=None, lease_expires_at=None))
        wakeup.after_commit(conn, wakeup.EVENTS)  # claimable again: waiting claims look
    return ids


def release_leases_of_slave(conn: Connection, slaveid: int) -> list[int]:
    """The worker is gone or restarted: its unconfirmed leases go back to the queue now."""
    ids = [r.id for r in conn.execute(sa.select(buildrequests.c.id).where(
        buildrequests.c.claimed_by == slaveid, buildrequests.c.lease_expires_at.isnot(None),
        buildrequests.c.complete.is_(False)))]
    if ids:
        conn.execute(buildrequests.update().where(buildrequests.c.id.in_(ids))
                     .values(claimed_by=None, claimed_at=None, lease_expires_at=None))
        wakeup.after_commit(conn, wakeup.EVENTS)
    return ids


def lease_build_request(conn: Connection, cfg: MasterConfig, slavename: str, slaveid: int,
                        lease: float, now: float | None = None) -> int | None:
    """Lease the oldest claimable request this worker can run for ``lease`` seconds and
    return its id (None when there is none, or the worker is at its ``max_builds``).

    Safe against any number of concurrent claimers: the claim is an UPDATE guarded by the
    request still being claimable (with ``SKIP LOCKED`` candidates on PostgreSQL)."""
    now = time.time() if now is None else now
    slave = cfg.slaves.get(slavename)
    names = builders_for_slave(cfg, slavename)
    if slave is None or not names:
        return None
    release_expired_leases(conn, now)
    if slave.max_builds is not None and len(running_builds_of_slave(conn, slaveid)) + len(
            leases_of_slave(conn, slaveid, now)) >= slave.max_builds:
        return None
    ids = [r.id for r in conn.execute(sa.select(builders.c.id)
                                      .where(builders.c.name.in_(names)))]
    if not ids:
        return None
    query = (sa.select(buildrequests.c.id)
             .where(buildrequests.c.builderid.in_(ids),
                    buildrequests.c.complete.is_(False), buildrequests.c.claimed_at.is_(None))
             .order_by(buildrequests.c.priority.desc(), buildrequests.c.submitted_at,
                       buildrequests.c.id)
             .limit(5))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=buildrequests)
    for cand in conn.execute(query).all():
        claimed = conn.execute(buildrequests.update().where(
            buildrequests.c.id == cand.id, buildrequests.c.claimed_at.is_(None),
            buildrequests.c.complete.is_(False),
        ).values(claimed_by=slaveid, claimed_at=now, lease_expires_at=now + lease)).rowcount
        if claimed == 1:
            return int(cand.id)
    return None


def start_leased_build(conn: Connection, cfg: MasterConfig, brid: int, slavename: str,
                       slaveid: int, session: str | None = None, seq: int | None = None,
                       now: float | None = None) -> ClaimedBuild | None:
    """Confirm the worker's lease on request ``brid``: start its build. None when the lease
    is no longer the worker's (it ran out and the request was claimed again, or the
    request was finished meanwhile). A lease that ran out but was not yet given to anyone
    else is still honoured: the worker that holds it is evidently alive."""
    now = time.time() if now is None else now
    req = conn.execute(sa.select(buildrequests).where(
        buildrequests.c.id == brid, buildrequests.c.claimed_by == slaveid,
        buildrequests.c.complete.is_(False), buildrequests.c.lease_expires_at.isnot(None),
    )).first()
    if req is None:
        return None
    bname = conn.execute(sa.select(builders.c.name)
                         .where(builders.c.id == req.builderid)).scalar_one()
    if bname not in cfg.builders or bname not in builders_for_slave(cfg, slavename):
        # the configuration changed meanwhile: someone else may run it
        conn.execute(buildrequests.update().where(buildrequests.c.id == brid)
                     .values(claimed_by=None, claimed_at=None, lease_expires_at=None))
        return None
    conn.execute(buildrequests.update().where(buildrequests.c.id == brid)
                 .values(lease_expires_at=None))
    return _start_build(conn, cfg, _Start(bname, req.builderid, brid, req.buildsetid, slavename,
                                          slaveid, session, seq), now)


def claim_build_request(conn: Connection, cfg: MasterConfig, slavename: str, slaveid: int,
                        now: float | None = None) -> ClaimedBuild | None:
    """Lease and confirm at once: the build starts in this transaction. For callers that
    hand the build over in the same breath (tests, and workers of before the lease)."""
    now = time.time() if now is None else now
    brid = lease_build_request(conn, cfg, slavename, slaveid, 60.0, now)
    if brid is None:
        return None
    return start_leased_build(conn, cfg, brid, slavename, slaveid, now=now)


def _gather_properties(conn: Connection, cfg: MasterConfig, buildername: str, bsid: int,
                       sss: list[dict[str, Any]], slavename: str
                       ) -> tuple[dict[str, tuple[Any, str]], list[str]]:
    """The build's properties by precedence (global, builder, buildset, changes, slave),
    and a description of each value left out because the engine cannot carry it (nested
    too deeply or not JSON: stored before such values were refused at entry; decoding them
    could fail anywhere)."""
    bcfg = cfg.builders[buildername]
    props: dict[str, tuple[Any, str]] = {}
    refused: list[str] = []

    def add(name: str, value: Any, source: str) -> None:
        if depth(value, MAX_CARRIED_DEPTH) > MAX_CARRIED_DEPTH:
            refused.append(f"property {name!r} ({source}) nests more than "
                           f"{MAX_CARRIED_DEPTH} levels deep")
            props.pop(name, None)
        else:
            props[name] = (value, source)

    def add_stored(name: str, text: str, source: str) -> None:
        try:
            value = decode_stored(text, f"property {name!r} ({source})")
        except ValueRefused as exc:
            refused.append(str(exc))
            props.pop(name, None)
        else:
            add(name, value, source)

    for k, v in cfg.properties.items():
        add(k, v, "Global")
    for k, v in bcfg.properties.items():
        add(k, v, "Builder")
    for r in conn.execute(sa.select(buildset_properties)
                          .where(buildset_properties.c.buildsetid == bsid)
                          .order_by(buildset_properties.c.id)):
        add_stored(r.name, r.value, r.source)
    changeids = [c for ss in sss for c in ss["changeids"]]
    if changeids:
        for r in conn.execute(sa.select(change_properties)
                              .where(change_properties.c.changeid.in_(changeids))
                              .order_by(change_properties.c.changeid,
                                        change_properties.c.id)):
            add_stored(r.name, r.value, "Change")
    for k, v in cfg.slaves[slavename].properties.items():
        add(k, v, "BuildSlave")
    return props, refused


@dataclass
class _Start:
    """A confirmed claim: the request, its builder and the worker that runs it."""

    buildername: str
    builderid: int
    brid: int
    bsid: int
    slavename: str
    slaveid: int
    session: str | None  # the worker process's session and claim number (worker_protocol)
    seq: int | None


def _start_build(conn: Connection, cfg: MasterConfig, start: _Start, now: float
                 ) -> ClaimedBuild:
    """Start the build of a confirmed claim, in phases, each a fixed number of queries: its
    number and row; its properties (by precedence, then the build's own); its steps, all at
    once, none started yet; the ``build.started`` event, and the build's end as EXCEPTION
    when some stored property cannot be used."""
    number, buildid, reason = _create_build_row(conn, start, now)
    sss = build_sourcestamps(conn, start.brid)
    props, refused = _build_properties(conn, cfg, start, number, reason, sss)
    set_properties(conn, buildid, props)
    bcfg = cfg.builders[start.buildername]
    _create_steps(conn, bcfg.factory, buildid, props, sss)
    events.emit(conn, "build.started", buildid=buildid, builder=start.buildername,
                number=number, slave=start.slavename, brid=start.brid)
    if refused:
        _refuse_build(conn, cfg, buildid, refused, now)
    return ClaimedBuild(buildid, start.buildername, number, bcfg.slavebuilddir,
                        {k: v for k, (v, _s) in props.items()})


def _create_build_row(conn: Connection, start: _Start, now: float) -> tuple[int, int, str]:
    """(number, build id, reason): the number comes from the builder's counter, bumped in
    this transaction."""
    number = conn.execute(builders.update().where(builders.c.id == start.builderid)
                          .values(next_number=builders.c.next_number + 1)
                          .returning(builders.c.next_number)).scalar_one() - 1
    reason = conn.execute(sa.select(buildsets.c.reason)
                          .where(buildsets.c.id == start.bsid)).scalar_one()
    buildid = inserted_id(conn.execute(builds.insert().values(
        builderid=start.builderid, number=number, buildrequestid=start.brid,
        slaveid=start.slaveid, reason=reason, started_at=now, text="[]",
        worker_session=start.session, worker_seq=start.seq,
    )))
    return int(number), buildid, str(reason)


def _build_properties(conn: Connection, cfg: MasterConfig, start: _Start, number: int,
                      reason: str, sss: list[dict[str, Any]]
                      ) -> tuple[dict[str, tuple[Any, str]], list[str]]:
    """The properties by precedence (:func:`_gather_properties`) and the build's own
    (the main source stamp's, builder, number, slave, workdir, reason); and the values
    refused."""
    props, refused = _gather_properties(conn, cfg, start.buildername, start.bsid, sss,
                                        start.slavename)
    main_ss = next((s for s in sss if s["codebase"] == ""), sss[0] if sss else None)
    if main_ss is not None:
        for key in ("branch", "revision", "repository", "project", "codebase"):
            props[key] = (main_ss[key], "Build")
    props["buildername"] = (start.buildername, "Builder")
    props["buildnumber"] = (number, "Build")
    props["slavename"] = (start.slavename, "BuildSlave")
    props["workdir"] = (cfg.builders[start.buildername].slavebuilddir, "slave")
    props.setdefault("reason", (reason, "Build"))
    return props, refused


def _create_steps(conn: Connection, factory: BuildFactory, buildid: int,
                  props: dict[str, tuple[Any, str]], sss: list[dict[str, Any]]) -> None:
    """Every step exists from the start (one insert), so pages show what is still to
    come; a repeated step name gets ``_1``, ``_2``… as in Buildbot."""
    used: dict[str, int] = {}
    step_rows = []
    ctx = RenderContext({k: v for k, (v, _s) in props.items()},
                        {s["codebase"]: s for s in sss})
    for index, step in enumerate(factory.steps):
        base = step.step_name()
        n = used.get(base, 0)
        used[base] = n + 1
        name = base if n == 0 else f"{base}_{n}"
        try:
            text = step.describe(ctx, done=False)
        except Exception:
            text = [name]
        step_rows.append({"buildid": buildid, "number": index, "name": name,
                          "text": json.dumps(text)})
    if step_rows:
        conn.execute(steps.insert(), step_rows)


def _refuse_build(conn: Connection, cfg: MasterConfig, buildid: int, problems: list[str],
                  now: float) -> None:
    """End a build that cannot run as it was asked for as EXCEPTION at once, with the
    reason in its first step's log (or only in its text when it has no step). Its request
    completes: running it again would fail the same way."""
    first = conn.execute(sa.select(steps).where(steps.c.buildid == buildid)
                         .order_by(steps.c.number).limit(1)).first()
    message = "the build cannot start: " + "; ".join(problems)
    if first is not None:
        _step_exception(conn, first, message, now)
    finish_build(conn, cfg, buildid, now, result=EXCEPTION,
                 text=["exception", "bad", "properties"])


# -- running steps ---------------------------------------------------------------------------

def _factory_step(cfg: MasterConfig, buildername: str, number: int) -> BuildStep | None:
    bcfg = cfg.builders.get(buildername)
    if bcfg is None or number >= len(bcfg.factory.steps):
        return None
    return bcfg.factory.steps[number]


def _builder_name(conn: Connection, builderid: int) -> str:
    return str(conn.execute(sa.select(builders.c.name).where(builders.c.id == builderid))
               .scalar_one())


def compute_result(cfg: MasterConfig, buildername: str, step_rows: Sequence[sa.Row[Any]],
                   stop_requested: str | None) -> tuple[int, bool, list[str]]:
    """(result, halted, text-of-problem-steps) from the finished steps, by Buildbot's rules."""
    result = SUCCESS
    halted = False
    problems: list[str] = []
    for row in step_rows:
        if row.finished_at is None or row.results is None:
            continue
        r = row.results
        step = _factory_step(cfg, buildername, row.number)
        flunk_fail = step.flunkOnFailure if step else True
        warn_fail = step.warnOnFailure if step else False
        halt = step.haltOnFailure if step else False
        flunk_warn = step.flunkOnWarnings if step else False
        warn_warn = step.warnOnWarnings if step else True
        before = result
        if r == FAILURE:
            if flunk_fail:
                result = worst_status(result, FAILURE)
            elif warn_fail:
                result = worst_status(result, WARNINGS)
            if halt:
                halted = True
        elif r == WARNINGS:
            if flunk_warn:
                result = worst_status(result, FAILURE)
            elif warn_warn:
                result = worst_status(result, WARNINGS)
        elif r == EXCEPTION:
            result = worst_status(result, EXCEPTION)
            halted = True
        if r in (FAILURE, WARNINGS, EXCEPTION) and (result != before or r == EXCEPTION):
            text = step_text(row)
            problems.append(" ".join(t for t in text if t not in ("failed", "warnings",
                                                                    "exception")) or row.name)
    if stop_requested:
        result = worst_status(result, EXCEPTION)
        halted = True
    return result, halted, problems


def _build_text(result: int, problems: list[str], stop_requested: str | None) -> list[str]:
    if result == SUCCESS:
        return ["build", "successful"]
    if stop_requested:
        return ["exception", "interrupted"]
    head = {WARNINGS: "warnings", FAILURE: "failed", EXCEPTION: "exception"}.get(result,
                                                                                "failed")
    return [head] + problems


def next_step(conn: Connection, cfg: MasterConfig, buildid: int,
              now: float | None = None) -> dict[str, Any] | None:
    """Start the next step that should run and return what the worker must execute, or
    finish the build and return None."""
    now = time.time() if now is None else now
    build = conn.execute(sa.select(builds).where(builds.c.id == buildid)).one()
    if build.finished_at is not None:
        return None
    buildername = _builder_name(conn, build.builderid)
    rows = conn.execute(sa.select(steps).where(steps.c.buildid == buildid)
                        .order_by(steps.c.number)).all()
    for row in rows:  # a step left running means the worker lost track of it
        if row.started_at is not None and row.finished_at is None:
            _finish_step_row(conn, row, EXCEPTION, step_text(row) + ["lost"], now)
    rows = conn.execute(sa.select(steps).where(steps.c.buildid == buildid)
                        .order_by(steps.c.number)).all()
    _result, halted, _ = compute_result(cfg, buildername, rows, build.stop_requested)
    ctx = render_context(conn, build)
    for row in rows:
        if row.started_at is not None:
            continue
        step = _factory_step(cfg, buildername, row.number)
        if step is None:
            # the configuration changed under a running build
            conn.execute(steps.update().where(steps.c.id == row.id).values(
                started_at=now, finished_at=now, results=EXCEPTION,
                text=json.dumps([row.name, "removed", "from", "config"])))
            halted = True
            continue
        if halted and not step.alwaysRun:
            continue
        try:
            run_it = step.should_run(ctx)
        except Exception as exc:
            _step_exception(conn, row, f"doStepIf raised {type(exc).__name__}: {exc}", now)
            halted = True
            continue
        if not run_it:
            _finish_step_row(conn, row, SKIPPED, step.describe(ctx, done=True) + ["skipped"],
                             now, started=True)
            continue
        try:
            spec = step.render_for_worker(ctx, default_workdir="build")
            text = step.describe(ctx, done=False)
        except Exception as exc:
            _step_exception(conn, row, f"rendering the step failed: {type(exc).__name__}: "
                            f"{exc}", now)
            halted = True
            continue
        conn.execute(steps.update().where(steps.c.id == row.id)
                     .values(started_at=now, text=json.dumps(text)))
        create_log(conn, row.id, "stdio")
        events.emit(conn, "step.started", buildid=buildid, stepid=row.id, number=row.number,
                    name=row.name)
        spec.update({"id": row.id, "number": row.number, "name": row.name})
        return spec
    finish_build(conn, cfg, buildid, now)
    return None


def _step_exception(conn: Connection, row: Any, message: str, now: float) -> None:
    conn.execute(steps.update().where(steps.c.id == row.id).values(started_at=now))
    logid = create_log(conn, row.id, "err.text")
    append_chunks(conn, logid, [("h", message + "\n")])
    finish_log(conn, logid)
    _finish_step_row(conn, row, EXCEPTION, [row.name, "exception"], now)


def _finish_step_row(conn: Connection, row: Any, result: int, text: list[str], now: float,
                     started: bool = False) -> None:
    values: dict[str, Any] = {"finished_at": now, "results": result, "text": json.dumps(text)}
    if started:
        values["started_at"] = now
    conn.execute(steps.update().where(steps.c.id == row.id).values(**values))
    conn.execute(logs.update().where(logs.c.stepid == row.id).values(complete=True))
    events.emit(conn, "step.finished", buildid=row.buildid, stepid=row.id, number=row.number,
                name=row.name, results=result)


def step_build(conn: Connection, stepid: int) -> Any:
    """The build row a step belongs to (None if the step does not exist)."""
    return conn.execute(sa.select(builds).join(steps, steps.c.buildid == builds.c.id)
                        .where(steps.c.id == stepid)).first()


def append_step_log(conn: Connection, cfg: MasterConfig, stepid: int, logname: str,
                    chunks: list[tuple[str, str]]) -> int:
    """Append output to a running step's log (creating the log on first use)."""
    return append_chunks(conn, _step_log_id(conn, stepid, logname), chunks,
                         compression_limit=cfg.logCompressionLimit)


def append_step_frames(conn: Connection, cfg: MasterConfig, stepid: int, logname: str,
                       frames: list[Frame]) -> int:
    """Append output a worker sent compressed (:mod:`bbweb.worker.logframes`)."""
    return append_frames(conn, _step_log_id(conn, stepid, logname), frames,
                         compression_limit=cfg.logCompressionLimit)


_STEP_LOG = sa.select(logs.c.id).where(logs.c.stepid == sa.bindparam("stepid"),
                                       logs.c.name == sa.bindparam("name"))


def _step_log_id(conn: Connection, stepid: int, logname: str) -> int:
    logid = conn.execute(_STEP_LOG, {"stepid": stepid, "name": logname}).scalar()
    return int(logid) if logid is not None else create_log(conn, stepid, logname)


def finish_step(conn: Connection, cfg: MasterConfig, stepid: int, rc: int | None,
                interrupted: str | None = None, properties: dict[str, Any] | None = None,
                error: str | None = None, now: float | None = None) -> None:
    """Judge a finished command: rc 0 is SUCCESS, anything else FAILURE; a timeout is a
    FAILURE marked "timeout"; a stop or an execution error is an EXCEPTION."""
    now = time.time() if now is None else now
    row = conn.execute(sa.select(steps).where(steps.c.id == stepid)).one()
    if row.finished_at is not None:
        return
    build = conn.execute(sa.select(builds).where(builds.c.id == row.buildid)).one()
    buildername = _builder_name(conn, build.builderid)
    step = _factory_step(cfg, buildername, row.number)
    if properties:
        source = type(step).__name__ if step else "Step"
        set_properties(conn, build.id, {k: (v, source) for k, v in properties.items()})
    ctx = render_context(conn, build)
    done = step.describe(ctx, done=True) if step else [row.name]
    if error:
        logid = conn.execute(sa.select(logs.c.id).where(logs.c.stepid == stepid,
                                                        logs.c.name == "stdio")).scalar()
        if logid is not None:
            append_chunks(conn, logid, [("h", f"\n{error}\n")])
    if interrupted in ("stopped", "error"):
        result = EXCEPTION
        text = done + (["interrupted"] if interrupted == "stopped" else ["exception"])
    elif interrupted == "timeout":
        result = FAILURE
        text = done + ["timeout"]
    elif rc == 0:
        result, text = SUCCESS, done
    else:
        result, text = FAILURE, done + ["failed"]
    if step is not None and callable(step.hideStepIf):
        try:
            hidden = bool(step.hideStepIf(result, ctx))
        except Exception:
            hidden = False
    else:
        hidden = bool(step.hideStepIf) if step is not None else False
    conn.execute(steps.update().where(steps.c.id == stepid).values(hidden=hidden))
    _finish_step_row(conn, row, result, text, now)


def finish_build(conn: Connection, cfg: MasterConfig, buildid: int,
                 now: float | None = None, result: int | None = None,
                 text: list[str] | None = None) -> None:
    """Record the build's result and complete its request (and buildset when all done)."""
    now = time.time() if now is None else now
    build = conn.execute(sa.select(builds).where(builds.c.id == buildid)).one()
    if build.finished_at is not None:
        return
    buildername = _builder_name(conn, build.builderid)
    rows = conn.execute(sa.select(steps).where(steps.c.buildid == buildid)
                        .order_by(steps.c.number)).all()
    if result is None:
        result, _halted, problems = compute_result(cfg, buildername, rows,
                                                   build.stop_requested)
        text = _build_text(result, problems, build.stop_requested)
    conn.execute(builds.update().where(builds.c.id == buildid).values(
        finished_at=now, results=result, text=json.dumps(text or [])))
    conn.execute(buildrequests.update().where(buildrequests.c.id == build.buildrequestid)
                 .values(complete=True, complete_at=now, results=result))
    events.emit(conn, "build.finished", buildid=buildid, builder=buildername,
                number=build.number, results=result)
    bsid = conn.execute(sa.select(buildrequests.c.buildsetid)
                        .where(buildrequests.c.id == build.buildrequestid)).scalar_one()
    maybe_complete_buildset(conn, bsid, now)


def request_stop(conn: Connection, buildid: int, reason: str) -> bool:
    """Ask for a running build to stop; the worker hears of it on its next contact."""
    updated = conn.execute(builds.update().where(
        builds.c.id == buildid, builds.c.finished_at.is_(None),
        builds.c.stop_requested.is_(None)).values(stop_requested=reason or "stopped")).rowcount
    if updated:
        events.emit(conn, "build.stop_requested", buildid=buildid, reason=reason)
    return bool(updated)


def stop_requested(conn: Connection, buildid: int) -> str | None:
    return conn.execute(sa.select(builds.c.stop_requested)
                        .where(builds.c.id == buildid)).scalar()


def abandon_builds_of_slave(conn: Connection, cfg: MasterConfig, slaveid: int,
                            now: float | None = None, only: list[int] | None = None
                            ) -> list[int]:
    """A worker vanished or forgot its builds: its running builds (those in ``only``, when
    given) end as EXCEPTION ("slave lost") and their requests go back to the queue so
    another worker (or the same one, back) retries."""
    now = time.time() if now is None else now
    query = sa.select(builds).where(builds.c.slaveid == slaveid, builds.c.finished_at.is_(None))
    if only is not None:
        if not only:
            return []
        query = query.where(builds.c.id.in_(only))
    lost = conn.execute(query.order_by(builds.c.id)).all()
    for build in lost:
        for row in conn.execute(sa.select(steps).where(steps.c.buildid == build.id,
                                                       steps.c.started_at.isnot(None),
                                                       steps.c.finished_at.is_(None))).all():
            _finish_step_row(conn, row, EXCEPTION, step_text(row) + ["slave", "lost"],
                             now)
        conn.execute(builds.update().where(builds.c.id == build.id).values(
            finished_at=now, results=EXCEPTION, text=json.dumps(["exception", "slave", "lost"])))
        conn.execute(buildrequests.update().where(buildrequests.c.id == build.buildrequestid)
                     .values(claimed_by=None, claimed_at=None, lease_expires_at=None))
        events.emit(conn, "build.finished", buildid=build.id,
                    builder=_builder_name(conn, build.builderid), number=build.number,
                    results=EXCEPTION)
        events.emit(conn, "buildrequest.retry", brid=build.buildrequestid)
    return [b.id for b in lost]
