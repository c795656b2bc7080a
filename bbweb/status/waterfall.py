"""What the waterfall reads: the builds, steps, changes and slave events of
one page, and the two rows above the grid. How they become rows is
:mod:`bbweb.status.waterfall_layout`.

**Reading** (:func:`load`). The page shows ``num_events`` rows at most, so it reads only the
newest few builds of each builder (an index range on ``(builderid, started_at)``, all
builders in one ``UNION ALL``), their steps in one query, the newest changes and slave
events in one query each, and the logs of the steps shown in one more. A stream that was
cut short is only trusted down to its oldest event read (its *horizon*): when the rows
would reach below it, the streams in the way are read again with a larger limit (at most
``MAX_ROUNDS`` times, each ``GROWTH`` times larger) and the rows are made again. So what a
page costs depends on how dense its own time span is, never on how much history exists.

Only the columns a box shows are read, into small slotted records (:class:`Build`,
:class:`Step`): the steps of builds that end up below the page are read for the layout's
sake only, so their JSON text is decoded, and their logs read, only for the steps shown.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db import schema
from bbweb.db.schema import builds, changes, events, logs, sourcestamp_changes, steps
from bbweb.mastercfg.master import MasterConfig
from bbweb.status import estimates, overview, queries, upcoming
from bbweb.status.records import BuilderInfo, BuilderSummary, BuildInfo, ChangeInfo
from bbweb.status.upcoming import Upcoming
from bbweb.status.waterfall_layout import (
    MAX_BOXES,
    WINDOW,
    Bucketing,
    Event,
    bucket,
    builder_stream,
    change_stream,
    point_event,
    with_spacers,
)
from bbweb.values.results import FAILURE, SUCCESS

IMPLICIT_SPAN = 24 * 3600.0  # lower bound when only branch/committer filters narrow the page
MAX_ROUNDS = 6
GROWTH = 4
# builder point events (``show_events=true``): slave comings and goings and actions on
# slaves go in the columns of the slave's builders, reconfigurations in the builder's own
# column, a clean shutdown of the master in every column
SLAVE_KINDS = {"slave.connected": "connected", "slave.disconnected": "disconnected",
               "slave.paused": "paused", "slave.unpaused": "unpaused",
               "slave.graceful_shutdown": "graceful shutdown", "slave.ping": "ping",
               "slave.pong": "pong"}
BUILDER_KINDS = {"builder.created": "builder created",
                 "builder.updated": "config updated", "builder.removed": "builder removed"}
MASTER_KINDS = {"master.clean_shutdown": "master shutting down",
                "master.clean_shutdown_cancelled": "shutdown cancelled"}
POINT_KINDS = (*SLAVE_KINDS, *BUILDER_KINDS, *MASTER_KINDS)
SEARCH = 200  # builds looked at for the "last build" row when a branch filter is set


# -- records ------------------------------------------------------------------------------------

@dataclass(eq=False, slots=True)
class Step:
    """A step as its box shows it. ``text`` and ``urls`` are decoded, and ``logs`` read, by
    :func:`load` for the steps shown only (``text_json``/``urls_json`` hold them till
    then). ``logs`` are ``(name, viewable)`` pairs: a log with content, or still being
    written, links to its page."""

    id: int
    buildid: int
    number: int
    name: str
    started_at: float | None
    finished_at: float | None
    results: int | None
    hidden: bool
    text_json: str | None = None
    urls_json: str | None = None
    text: Any = ()
    # no container made per step read: most are read for the layout only
    urls: dict[str, Any] | None = None
    logs: Sequence[tuple[str, bool]] = ()


@dataclass(eq=False, slots=True)
class Build:
    """A build as the grid shows it: its start box and its steps."""

    id: int
    builderid: int
    builder: str
    number: int
    reason: str
    started_at: float
    finished_at: float | None
    steps: list[Step] = field(default_factory=list)


# -- reading ------------------------------------------------------------------------------------

@dataclass
class Filters:
    """What narrows the builds and changes shown (None: no filter)."""

    branches: set[str | None] | None = None
    committers: set[str] | None = None
    projects: set[str] | None = None

    @property
    def narrows_builds(self) -> bool:
        return bool(self.branches or self.committers or self.projects)


def _json(text: str | None, default: Any, what: str) -> Any:
    """A JSON column through the status layer's decoder, which shows a row an older version
    stored (not JSON, a lone surrogate, nested too deeply to decode) repaired."""
    return queries.decode_json(text, default, what)


def _words(text: str | None, what: str) -> list[str]:
    """A step's text as the words its box shows, whatever an old row holds."""
    value = _json(text, [], what)
    return [str(t) for t in value] if isinstance(value, list) else [str(value)]


GROUP = 200  # builders per statement: SQLite allows 500 terms in a compound select


@functools.lru_cache(maxsize=GROUP)
def _builds_union(n: int) -> sa.Select[Any] | sa.CompoundSelect[Any]:
    """For ``n`` builders: ``UNION ALL`` of each one's newest ``:limit_i`` builds started in
    ``[:lo, :hi_i]``, an index range scan on ``(builderid, started_at)`` each. Building a
    statement of a few hundred clauses costs more than running it, so it is built once per
    ``n`` and bound to values on each use (an open bound is an infinite one). A memo of
    immutable statements, the same in every process."""
    parts = [sa.select(builds.c.id, builds.c.builderid, builds.c.number, builds.c.reason,
                       builds.c.started_at, builds.c.finished_at)
             .where(builds.c.builderid == sa.bindparam(f"builder_{i}"),
                    builds.c.started_at <= sa.bindparam(f"hi_{i}"),
                    builds.c.started_at >= sa.bindparam("lo"))
             .order_by(builds.c.started_at.desc())
             .limit(sa.bindparam(f"limit_{i}"))
             for i in range(n)]
    return parts[0] if n == 1 else sa.union_all(*(p.subquery().select() for p in parts))


def _newest_builds(conn: Connection, wanted: Sequence[tuple[BuilderInfo, int, float | None]],
                   lo: float | None) -> dict[int, list[Build]]:
    """builderid -> its newest ``limit`` builds started in [lo, hi], newest first, for each
    (builder, limit, hi): one ``UNION ALL`` of index range scans on
    ``(builderid, started_at)`` per ``GROUP`` builders."""
    out: dict[int, list[Build]] = {b.id: [] for b, _limit, _hi in wanted}
    names = {b.id: b.name for b, _limit, _hi in wanted}
    for first in range(0, len(wanted), GROUP):
        group = wanted[first:first + GROUP]
        params: dict[str, Any] = {"lo": -math.inf if lo is None else lo}
        for i, (b, limit, hi) in enumerate(group):
            params[f"builder_{i}"] = b.id
            params[f"hi_{i}"] = math.inf if hi is None else hi
            params[f"limit_{i}"] = limit
        for bid, builderid, number, reason, started, finished in conn.execute(
                _builds_union(len(group)), params):
            out[builderid].append(Build(bid, builderid, names[builderid], number,
                                        reason or "", started, finished))
    for lst in out.values():
        lst.sort(key=lambda b: (b.started_at, b.number), reverse=True)
    return out


# one statement whatever the number of builds (an expanding IN), built once
_STEPS = (sa.select(steps.c.id, steps.c.buildid, steps.c.number, steps.c.name,
                    steps.c.started_at, steps.c.finished_at, steps.c.results, steps.c.hidden,
                    steps.c.text, steps.c.urls)
          .where(steps.c.buildid.in_(sa.bindparam("buildids", expanding=True)),
                 steps.c.started_at.isnot(None))
          .order_by(steps.c.buildid, steps.c.number))
# by step id, not by joining steps on build id: the join made PostgreSQL plan a parallel
# scan whose start-up cost twice the query itself
_LOGS = (sa.select(logs.c.stepid, logs.c.name, logs.c.num_chunks, logs.c.complete)
         .where(logs.c.stepid.in_(sa.bindparam("stepids", expanding=True)))
         .order_by(logs.c.stepid, logs.c.id))


def _steps(conn: Connection, buildids: Sequence[int]) -> dict[int, list[Step]]:
    """buildid -> its started steps, in order; their text, URLs and logs not decoded or read
    yet (:func:`_finish_shown` does it for the steps shown)."""
    out: dict[int, list[Step]] = {}
    if not buildids:
        return out
    for row in conn.execute(_STEPS, {"buildids": sorted(buildids)}):
        step = Step(*row)
        mine = out.get(step.buildid)
        if mine is None:
            out[step.buildid] = [step]
        else:
            mine.append(step)
    return out


def _build_authors(conn: Connection, buildids: Sequence[int]) -> dict[int, set[str]]:
    """buildid -> authors of the changes it built. One query."""
    bss = schema.buildset_sourcestamps
    out: dict[int, set[str]] = {}
    rows = conn.execute(
        sa.select(builds.c.id, changes.c.author)
        .join(schema.buildrequests, schema.buildrequests.c.id == builds.c.buildrequestid)
        .join(bss, bss.c.buildsetid == schema.buildrequests.c.buildsetid)
        .join(sourcestamp_changes, sourcestamp_changes.c.sourcestampid == bss.c.sourcestampid)
        .join(changes, changes.c.changeid == sourcestamp_changes.c.changeid)
        .where(builds.c.id.in_(sorted(buildids))))
    for r in rows:
        out.setdefault(r.id, set()).add(r.author)
    return out


def _matching(conn: Connection, found: list[Build], filters: Filters) -> set[int]:
    """Ids of the builds in ``found`` that pass the filters: a branch of theirs is wanted, a
    wanted committer wrote one of their changes, their ``project`` property is wanted. One
    query per kind of filter."""
    keep = {b.id for b in found}
    if filters.branches and keep:
        branches = overview.build_branches(conn, keep)
        keep = {i for i in keep if branches.get(i, set()) & filters.branches}
    if filters.committers and keep:
        authors = _build_authors(conn, sorted(keep))
        keep = {i for i in keep if authors.get(i, set()) & filters.committers}
    if filters.projects and keep:
        props = overview.build_property_values(conn, keep, ["project"])
        keep = {i for i in keep
                if any(n == "project" and v is not None and str(v) in filters.projects
                       for n, v, _s in props.get(i, []))}
    return keep


def _newest_changes(conn: Connection, limit: int, hi: float | None, lo: float | None,
                    filters: Filters) -> list[ChangeInfo]:
    """The newest ``limit`` changes in [lo, hi] that match the branch and committer filters
    (a walk down the ``when`` index). Files and properties are not read."""
    q = sa.select(changes)
    if hi is not None:
        q = q.where(changes.c.when_timestamp <= hi)
    if lo is not None:
        q = q.where(changes.c.when_timestamp >= lo)
    if filters.branches:
        named = sorted(b for b in filters.branches if b is not None)
        cond: sa.ColumnElement[bool] = changes.c.branch.in_(named)
        if None in filters.branches:
            cond = sa.or_(cond, changes.c.branch.is_(None))
        q = q.where(cond)
    if filters.committers:
        q = q.where(changes.c.author.in_(sorted(filters.committers)))
    rows = conn.execute(q.order_by(changes.c.when_timestamp.desc(), changes.c.changeid.desc())
                        .limit(limit))
    return [ChangeInfo(number=r.changeid, author=r.author, comments=r.comments,
                       branch=r.branch, revision=r.revision, revlink=r.revlink,
                       when=r.when_timestamp, category=r.category, repository=r.repository,
                       codebase=r.codebase, project=r.project, src=r.src,
                       is_dir=bool(r.is_dir)) for r in rows]


@dataclass(frozen=True, slots=True)
class PointEvent:
    """One builder point event: when, and the lines of its box."""

    when: float
    kind: str
    slaves: tuple[str, ...] = ()
    builder: str | None = None
    text: tuple[str, ...] = ()

    def applies_to(self, builder: str, slavenames: Sequence[str]) -> bool:
        if self.kind in MASTER_KINDS:
            return True
        if self.builder is not None:
            return self.builder == builder
        return any(sl in slavenames for sl in self.slaves)


def _point_text(kind: str, payload: dict[str, Any]) -> tuple[str, ...]:
    """The box's lines: what happened, to which slave, by whom."""
    what = SLAVE_KINDS.get(kind) or BUILDER_KINDS.get(kind) or MASTER_KINDS[kind]
    slave = payload.get("slave")
    lines = [slave, what] if isinstance(slave, str) else [what]
    if kind == "slave.pong" and isinstance(payload.get("seconds"), int | float):
        lines.append(f"{payload['seconds']:.2f} s")
    user = payload.get("user")
    if isinstance(user, str) and user:
        lines.append(f"by {user}")
    return tuple(lines)


def _point_events(conn: Connection, limit: int, hi: float | None, lo: float | None
                  ) -> list[PointEvent]:
    """The newest ``limit`` point events in [lo, hi], newest first: per kind a backward
    range of the ``(kind, created_at)`` index, so no sort of every such event ever
    recorded."""
    parts = []
    for kind in POINT_KINDS:
        q = sa.select(events.c.kind, events.c.created_at, events.c.payload).where(
            events.c.kind == kind)
        if hi is not None:
            q = q.where(events.c.created_at <= hi)
        if lo is not None:
            q = q.where(events.c.created_at >= lo)
        parts.append(q.order_by(events.c.created_at.desc()).limit(limit).subquery().select())
    rows = sorted(conn.execute(sa.union_all(*parts)), key=lambda r: r.created_at, reverse=True)
    out = []
    for r in rows[:limit]:
        payload = _json(r.payload, {}, f"{r.kind} event payload")
        if not isinstance(payload, dict):
            continue
        slaves = payload.get("slaves") if r.kind == "slave.ping" else [payload.get("slave")]
        builder = payload.get("builder") if r.kind in BUILDER_KINDS else None
        out.append(PointEvent(
            r.created_at, r.kind,
            tuple(sl for sl in slaves or () if isinstance(sl, str)),
            builder if isinstance(builder, str) else None,
            _point_text(r.kind, payload)))
    return out


def _finish_shown(conn: Connection, found: Iterable[Build]) -> None:
    """Decode the text and URLs of the shown builds' steps and read their logs (one
    query). Most steps say the same few things, so each distinct JSON text is decoded
    once."""
    by_step = {st.id: st for b in found for st in b.steps}
    if not by_step:
        return
    texts: dict[str | None, Any] = {}
    for st in by_step.values():
        raw = st.text_json
        text = texts.get(raw)
        if text is None:
            text = texts[raw] = _words(raw, f"step {st.id} text")
        st.text = text
        raw = st.urls_json
        if raw and raw != "{}":
            urls = _json(raw, {}, f"step {st.id} urls")
            st.urls = urls if isinstance(urls, dict) else None
    for stepid, name, num_chunks, complete in conn.execute(_LOGS,
                                                           {"stepids": sorted(by_step)}):
        owner = by_step.get(stepid)
        if owner is not None:
            owner.logs = [*owner.logs, (name, bool(num_chunks) or not complete)]


@dataclass
class _Source:
    """One cut-short read: how many rows were asked for, how far down it is complete."""

    limit: int
    cap: int
    horizon: float | None = None  # None: complete down to the lower bound

    def grow(self, top: float, target: float) -> bool:
        """Ask for enough rows to reach back to ``target``, judging by how far back the
        rows read so far reached from ``top`` (at least twice as many, at most ``cap``)."""
        if self.horizon is None or self.limit >= self.cap:
            return False
        covered = max(top - self.horizon, 1.0)
        factor = min(max((top - target) / covered * 1.25, 2.0), 16.0)
        self.limit = min(math.ceil(self.limit * factor), self.cap)
        return True


@dataclass
class Waterfall:
    """What the page shows: the rows (columns: changes, then the builders in order)."""

    builders: list[BuilderInfo]
    rows: Bucketing
    rounds: int = 1

    @property
    def more(self) -> bool:
        """Whether an older page can show something."""
        return bool(self.rows.chunks) and self.rows.stopped != "exhausted"

    @property
    def bottom(self) -> float | None:
        return self.rows.chunks[-1].when if self.rows.chunks else None


@dataclass
class _Reads:
    """What a page has read so far, from round to round: each stream's read (how many rows
    were asked for, how far down it is complete) and its rows, and the columns made of them
    (builderid -> (events, whether it has point events))."""

    build_src: dict[int, _Source]
    change_src: _Source
    event_src: _Source
    found: dict[int, list[Build]]
    keep: set[int] = field(default_factory=set)  # the builds that pass the filters
    have_steps: set[int] = field(default_factory=set)
    changes: list[ChangeInfo] = field(default_factory=list)
    points: list[PointEvent] = field(default_factory=list)
    streams: dict[int, tuple[list[Event], bool]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Todo:
    """The reads a round makes: the builders whose builds are read (again), and whether the
    changes and the point events are."""

    builders: list[BuilderInfo]
    changes: bool
    events: bool

    def __bool__(self) -> bool:
        return bool(self.builders or self.changes or self.events)


def _first_reads(blist: Sequence[BuilderInfo], ncols: int, num_events: int,
                 filters: Filters, show_events: bool) -> tuple[_Reads, _Todo]:
    """The first round's limits: enough builds per column to fill the page were the builds
    spread evenly over the columns, as many changes and point events as the page has rows
    (a filter that narrows the builds lets each builder's read grow further)."""
    first = max(4, math.ceil(num_events / ncols) + 2)
    build_cap = (num_events + 2) * (GROWTH if filters.narrows_builds else 1)
    point_cap = GROWTH * num_events + 2
    reads = _Reads(build_src={b.id: _Source(min(first, build_cap), build_cap) for b in blist},
                   change_src=_Source(min(first, point_cap), point_cap),
                   event_src=_Source(min(num_events + 2, point_cap), point_cap),
                   found={b.id: [] for b in blist})
    return reads, _Todo(list(blist), True, show_events)


def _build_asks(reads: _Reads, todo: Sequence[BuilderInfo], last_time: float | None
                ) -> list[tuple[BuilderInfo, int, float | None]]:
    """(builder, limit, newest start) of each builder's read: the first from ``last_time``
    down; a grown one continues below what was read (ties at the old horizon read again)."""
    asks: list[tuple[BuilderInfo, int, float | None]] = []
    for b in todo:
        src, have = reads.build_src[b.id], reads.found[b.id]
        if have:
            ties = sum(1 for bld in have if bld.started_at == src.horizon)
            asks.append((b, max(src.limit - len(have) + ties, 1), src.horizon))
        else:
            asks.append((b, src.limit, last_time))
    return asks


def _read_builds(conn: Connection, reads: _Reads, todo: Sequence[BuilderInfo],
                 filters: Filters, last_time: float | None, lower: float | None) -> None:
    """Read the next builds of the ``todo`` builders into ``reads``, with their steps, and
    which of them pass the filters: one statement for the builds (per ``GROUP`` builders),
    one for their steps, one per kind of filter."""
    asks = _build_asks(reads, todo, last_time)
    got = _newest_builds(conn, asks, lower)
    new_builds = [bld for b in todo for bld in got[b.id] if bld.id not in reads.have_steps]
    step_map = _steps(conn, [bld.id for bld in new_builds])
    for bld in new_builds:
        bld.steps = step_map.get(bld.id, [])
        reads.have_steps.add(bld.id)
    reads.keep |= (_matching(conn, new_builds, filters) if filters.narrows_builds
                   else {bld.id for bld in new_builds})
    for b, limit, _hi in asks:
        have = reads.found[b.id]
        known_ids = {bld.id for bld in have}
        have.extend(bld for bld in got[b.id] if bld.id not in known_ids)
        reads.build_src[b.id].horizon = (got[b.id][-1].started_at
                                         if len(got[b.id]) >= limit else None)


def _read_changes(conn: Connection, src: _Source, filters: Filters, last_time: float | None,
                  lower: float | None) -> list[ChangeInfo]:
    """The changes column's rows, read again with ``src``'s limit (one statement); sets how
    far down they are complete."""
    found = _newest_changes(conn, src.limit, last_time, lower, filters)
    src.horizon = found[-1].when if len(found) >= src.limit else None
    return found


def _read_points(conn: Connection, src: _Source, last_time: float | None,
                 lower: float | None) -> list[PointEvent]:
    """The point events, read again with ``src``'s limit (one statement); sets how far down
    they are complete."""
    found = _point_events(conn, src.limit, last_time, lower)
    src.horizon = found[-1].when if len(found) >= src.limit else None
    return found


def _columns(reads: _Reads, builder_list: Sequence[BuilderInfo],
             slavenames: dict[str, Sequence[str]], done: _Todo, *,
             show_events: bool, now: float) -> tuple[list[list[Event]], list[float | None]]:
    """The page's columns (changes, then the builders in order) and, per column, the time
    down to which it is complete (None: complete). A builder's column is made again only
    when this round (``done``) read its builds or the point events again."""
    asked = {b.id for b in done.builders}
    columns = [with_spacers(change_stream(reads.changes), now)]
    horizons: list[float | None] = [reads.change_src.horizon]
    for b in builder_list:
        if b.id not in reads.streams or done.events or b.id in asked:
            mine = slavenames.get(b.name, ())
            points = [point_event(pe.when, *pe.text) for pe in reads.points
                      if pe.applies_to(b.name, mine)] if show_events else []
            shown = [bld for bld in reads.found.get(b.id, []) if bld.id in reads.keep]
            reads.streams[b.id] = (with_spacers(builder_stream(shown, points), now),
                                   bool(points))
        column, has_points = reads.streams[b.id]
        columns.append(column)
        src = reads.build_src.get(b.id)
        limits = [src.horizon if src is not None else None]
        if has_points:
            limits.append(reads.event_src.horizon)
        known = [h for h in limits if h is not None]
        horizons.append(max(known) if known else None)
    return columns, horizons


def _regrow(reads: _Reads, rows: Bucketing, blist: Sequence[BuilderInfo], *,
            num_events: int, max_boxes: int, show_events: bool, now: float) -> _Todo:
    """The reads to grow after rows that stopped at a horizon: those complete only above how
    far back the page will probably reach (extrapolated from the rows made so far)."""
    top, low = rows.top, rows.stop_low if rows.stop_low is not None else now
    kept = len(rows.chunks)
    if kept:
        need = min(num_events / kept, max_boxes / max(rows.boxes, 1))
        target = top - max(top - low, WINDOW) * max(need, 1.0) * 1.1
    else:
        target = low - max(top - low, WINDOW)

    def grows(src: _Source) -> bool:
        return src.horizon is not None and src.horizon > target and src.grow(top, target)

    return _Todo([b for b in blist if grows(reads.build_src[b.id])],
                 grows(reads.change_src),
                 show_events and grows(reads.event_src))


def _shown_builds(rows: Bucketing) -> list[Build]:
    """The builds with a box on the page or just below it (the next event of a column)."""
    shown = {e.build.id: e.build for chunk in rows.chunks for cell in chunk.cells
             for e in cell if e.build is not None}
    shown.update({e.build.id: e.build for e in rows.next_events
                  if e is not None and e.build is not None})
    return list(shown.values())


def load(conn: Connection, builder_list: Sequence[BuilderInfo],
         slavenames: dict[str, Sequence[str]], filters: Filters, *, now: float,
         num_events: int, last_time: float | None = None, lower: float | None = None,
         show_events: bool = False, max_boxes: int = MAX_BOXES) -> Waterfall:
    """Read what a waterfall page of ``builder_list`` shows and cut it into rows.

    Per round: read the builds that must be read (:func:`_read_builds`), the changes and
    the point events (:func:`_read_changes`, :func:`_read_points`), make the columns
    (:func:`_columns`) and cut them into rows (:func:`bucket`); when the rows stopped at a
    stream's horizon, grow the reads in the way (:func:`_regrow`) and go round again.
    Last, decode the steps shown and read their logs (:func:`_finish_shown`).

    Statements: per round one for builds, one for their steps, one per build filter, one
    for changes and one for slave events (each only when that read must grow), then one for
    the logs of the steps shown; one or two rounds usually."""
    blist = [b for b in builder_list if b.id >= 0 and b.next_number > 0]
    reads, todo = _first_reads(blist, len(builder_list) + 1, num_events, filters, show_events)
    rounds = 0
    while True:
        rounds += 1
        if todo.builders:
            _read_builds(conn, reads, todo.builders, filters, last_time, lower)
        if todo.changes:
            reads.changes = _read_changes(conn, reads.change_src, filters, last_time, lower)
        if todo.events:
            reads.points = _read_points(conn, reads.event_src, last_time, lower)
        columns, horizons = _columns(reads, builder_list, slavenames, todo,
                                     show_events=show_events, now=now)
        rows = bucket(columns, now=now, num_events=num_events, last_time=last_time,
                      lower=lower, horizons=horizons, max_boxes=max_boxes)
        if rows.stopped != "horizon" or rounds >= MAX_ROUNDS:
            break
        todo = _regrow(reads, rows, blist, num_events=num_events, max_boxes=max_boxes,
                       show_events=show_events, now=now)
        if not todo:
            break
    _finish_shown(conn, _shown_builds(rows))
    return Waterfall(list(builder_list), rows, rounds)


# -- the two rows above the grid: last build and current activity -------------------------------

@dataclass
class BuilderHead:
    """A builder's "last build" and "current activity" boxes, and whether it is failing
    (offline, last finished build not a success, or a running build with a
    failed step)."""

    name: str
    summary: BuilderSummary
    last: BuildInfo | None
    failed_tests: int = 0
    failing: bool = False
    upcoming: list[Upcoming] = field(default_factory=list)  # scheduled builds, soonest first


def _failed_tests(conn: Connection, buildids: Sequence[int]) -> dict[int, int]:
    """buildid -> sum of its steps' ``tests-failed`` statistic. One query."""
    out: dict[int, int] = {}
    if not buildids:
        return out
    for r in conn.execute(sa.select(steps.c.buildid, steps.c.statistics)
                          .where(steps.c.buildid.in_(sorted(buildids)))):
        if not r.statistics or r.statistics == "{}":
            continue
        value = _json(r.statistics, {}, f"build {r.buildid} step statistics")
        n = value.get("tests-failed") if isinstance(value, dict) else None
        if isinstance(n, int | float) and not isinstance(n, bool):
            out[r.buildid] = out.get(r.buildid, 0) + int(n)
    return out


def builder_heads(conn: Connection, cfg: MasterConfig, rows: dict[str, BuilderInfo],
                  names: Sequence[str], *, branches: set[str | None] | None = None,
                  need_failing: bool = False, now: float | None = None
                  ) -> tuple[dict[str, BuilderHead], dict[tuple[str, int], float | None]]:
    """The heads of ``names`` and the ETAs of their running builds ((builder, number) ->
    seconds left). A head's state is ``waiting`` when the builder is idle and a Nightly
    or Periodic scheduler feeding it will fire (its ``upcoming`` times). A fixed handful
    of queries whatever the history."""
    now = time.time() if now is None else now
    summaries = queries.builder_summaries(conn, cfg, names, rows=rows)
    scheduled = upcoming.upcoming_builds(conn, cfg, names, now=now)
    summaries = upcoming.with_waiting(summaries, scheduled)
    running = {rows[n].id: len(summaries[n].current_builds) for n in names}
    last = overview.finished_builds(conn, [rows[n] for n in names], 1, branches=branches,
                                    search=SEARCH, running=running)
    latest = last
    if need_failing and branches:
        latest = overview.finished_builds(conn, [rows[n] for n in names], 1, running=running)
    tests = _failed_tests(conn, [lst[0].id for lst in last.values() if lst])
    building = [rows[n] for n in names if summaries[n].current_builds]
    etas: dict[tuple[str, int], float | None] = {}
    red: set[int] = set()
    if building:
        expected = estimates.expected_durations(conn, building)
        runs = queries.running_builds(conn, builderids=[b.id for b in building],
                                      details=False)
        etas = {(b.builder, b.number): estimates.eta_seconds(expected.get(b.builderid),
                                                              b.started_at, now)
                for b in runs}
        if need_failing and runs:
            red = {r.buildid for r in conn.execute(
                sa.select(steps.c.buildid).where(steps.c.buildid.in_([b.id for b in runs]),
                                                 steps.c.results == FAILURE))}
            red = {b.builderid for b in runs if b.id in red}
    heads = {}
    for name in names:
        bid = rows[name].id
        mine = last.get(bid)
        newest = latest.get(bid)
        build = mine[0] if mine else None
        failing = (summaries[name].state == "offline"
                   or bool(newest and newest[0].results != SUCCESS)
                   or bid in red)
        heads[name] = BuilderHead(name, summaries[name], build,
                                  tests.get(build.id, 0) if build else 0, failing,
                                  scheduled.get(name, []))
    return heads, etas


def lower_bound(*, last_time: float | None, first_time: float | None,
                show_time: float | None, implicit: bool, now: float) -> float | None:
    """The oldest time the page may show: ``last_time - show_time`` (``show_time`` wins),
    else ``first_time``, else — only when no bound is given and a branch or committer
    filter is — the last 24 hours."""
    if show_time is not None:
        return (now if last_time is None else last_time) - show_time
    if first_time is not None:
        return first_time
    if implicit and last_time is None:
        return now - IMPLICIT_SPAN
    return None


__all__ = ["Build", "BuilderHead", "Filters", "Step", "Waterfall", "builder_heads", "load",
           "lower_bound"]
