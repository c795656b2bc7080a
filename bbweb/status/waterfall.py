"""The waterfall (web spec §4): what the page reads, and how time becomes rows.

**Layout** (pure functions, unit-testable without a database). Every column (changes, one
per builder) is a stream of events, newest first: changes, build-start boxes, steps, point
events (a slave connecting) and the empty spacers that stand for idle time. Rows are made
by :func:`bucket`: take the newest head of all streams, put every event that started within
``WINDOW`` seconds of it into the row, repeat. :func:`layout_table` turns the rows into
table rows: each row is as tall as its fullest cell, cells are bottom-justified, the last
slot of a column is filled with the event just below the page, and empty slots are absorbed
by the box below them (``rowspan``) so that a step's box stretches over its duration.

**Reading** (:func:`load`). The page shows ``num_events`` rows at most, so it reads only the
newest few builds of each builder (an index range on ``(builderid, started_at)``, all
builders in one ``UNION ALL``), their steps in one query, the newest changes and slave
events in one query each, and the logs of the steps shown in one more. A stream that was
cut short is only trusted down to its oldest event read (its *horizon*): when the rows
would reach below it, the streams in the way are read again with a larger limit (at most
``MAX_ROUNDS`` times, each ``GROWTH`` times larger) and the rows are made again. So what a
page costs depends on how dense its own time span is, never on how much history exists.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.config.master import MasterConfig
from bbweb.db import schema
from bbweb.db.schema import builds, changes, events, logs, sourcestamp_changes, steps
from bbweb.status import estimates, overview, queries
from bbweb.status.builder import FAILURE, SUCCESS
from bbweb.status.records import (
    BuilderInfo,
    BuilderSummary,
    BuildInfo,
    ChangeInfo,
    LogInfo,
    StepInfo,
)

WINDOW = 10.0  # events starting this close to a row's newest event share its row
GAP = 2.0  # idle time longer than this is shown as an empty spacer
IMPLICIT_SPAN = 24 * 3600.0  # lower bound when only branch/committer filters narrow the page
MAX_BOXES = 4000  # a page ends after the row that reaches this many boxes
MAX_ROUNDS = 6
GROWTH = 4
POINT_KINDS = ("slave.connected", "slave.disconnected")
SEARCH = 200  # builds looked at for the "last build" row when a branch filter is set


# -- events and streams -------------------------------------------------------------------------

@dataclass(eq=False)
class Event:
    """One box of a column. ``finish`` is None while it runs; a point event finishes when it
    starts. ``rank`` orders events that start at the same moment (a build's steps above its
    start box)."""

    kind: str  # build | step | change | point | spacer
    start: float
    finish: float | None
    rank: int = 0
    build: BuildInfo | None = None
    step: StepInfo | None = None
    change: ChangeInfo | None = None
    text: tuple[str, ...] = ()


def build_events(build: BuildInfo) -> list[Event]:
    """A build's boxes: its started steps (finished hidden ones left out) and its start box."""
    out = [Event("build", build.started_at, build.finished_at, 0, build=build)]
    for st in build.steps:
        if st.started_at is None or (st.hidden and st.finished_at is not None):
            continue
        out.append(Event("step", st.started_at, st.finished_at, st.number + 1,
                         build=build, step=st))
    return out


def builder_stream(found: Iterable[BuildInfo], points: Iterable[Event] = ()) -> list[Event]:
    """A builder column, newest first: steps above their build's start box, point events
    interleaved by time."""
    evs = [e for b in found for e in build_events(b)]
    evs.extend(points)
    evs.sort(key=lambda e: (e.start, e.rank), reverse=True)
    return evs


def change_stream(found: Iterable[ChangeInfo]) -> list[Event]:
    """The changes column, newest first. A change is a point in time."""
    evs = [Event("change", c.when, c.when, c.number, change=c) for c in found]
    evs.sort(key=lambda e: (e.start, e.rank), reverse=True)
    return evs


def point_event(when: float, *text: str) -> Event:
    return Event("point", when, when, text=tuple(text))


def with_spacers(stream: Sequence[Event], now: float) -> list[Event]:
    """``stream`` with an empty spacer wherever nothing happened for more than ``GAP``
    seconds: between an event's end and the start of the next newer one, and between the
    newest event's end and ``now``. Running events end "now"."""
    out: list[Event] = []
    newer_start = now
    for e in stream:
        end = now if e.finish is None else e.finish
        if newer_start - end > GAP:
            out.append(Event("spacer", end, newer_start))
        out.append(e)
        newer_start = e.start
    return out


# -- rows ---------------------------------------------------------------------------------------

@dataclass
class Chunk:
    """One row of the waterfall: per column the events it holds (newest first) and ``when``,
    the earliest start among them (the time shown and the next page's ``last_time``)."""

    when: float
    cells: list[Sequence[Event]]


@dataclass
class Bucketing:
    chunks: list[Chunk]
    next_events: list[Event | None]  # per column: the first event below the page
    stopped: str  # rows | boxes | lower | horizon | exhausted
    stop_low: float | None = None  # with "horizon": the window's lower edge
    top: float = 0.0  # the newest event's start
    boxes: int = 0


def bucket(columns: Sequence[Sequence[Event]], *, now: float, num_events: int,
           last_time: float | None = None, lower: float | None = None,
           horizons: Sequence[float | None] | None = None,
           max_boxes: int = MAX_BOXES) -> Bucketing:
    """Cut the columns (each newest first) into rows.

    Start at the newest head event; the row takes, in every column, each head event that
    started less than ``WINDOW`` seconds before it. Rows whose earliest event is newer than
    ``last_time`` are made but not kept. Stop after ``num_events`` kept rows, after the row
    that reaches ``max_boxes`` boxes, when the next row would start before ``lower``, when
    nothing is left, or when a row would reach below a column's horizon (the oldest start
    its data is complete down to)."""
    n = len(columns)
    known = [h for h in (horizons or ()) if h is not None]
    horizon = max(known) if known else None
    lens = [len(col) for col in columns]
    pos = [0] * n
    chunks: list[Chunk] = []
    boxes = 0
    stopped = "exhausted"
    stop_low = None
    # the columns by their head event, newest first: a row visits only the columns it takes
    # events from
    heap = [(-col[0].start, i) for i, col in enumerate(columns) if col]
    heapq.heapify(heap)
    top = -heap[0][0] if heap else now
    empty: tuple[Event, ...] = ()
    while heap:
        t = -heap[0][0]
        if lower is not None and t < lower:
            stopped = "lower"
            break
        low = t - WINDOW
        if horizon is not None and horizon > low:
            stopped, stop_low = "horizon", low
            break
        cells: list[Sequence[Event]] = [empty] * n
        earliest = t
        taken = 0
        while heap and -heap[0][0] > low:
            i = heapq.heappop(heap)[1]
            col, p, end = columns[i], pos[i], lens[i]
            start = p
            while p < end and col[p].start > low:
                p += 1
            cells[i] = col[start:p]
            taken += p - start
            pos[i] = p
            if col[p - 1].start < earliest:
                earliest = col[p - 1].start
            if p < end:
                heapq.heappush(heap, (-col[p].start, i))
        if last_time is None or earliest <= last_time:
            chunks.append(Chunk(earliest, cells))
            boxes += taken
            if len(chunks) >= num_events:
                stopped = "rows"
                break
            if boxes >= max_boxes:
                stopped = "boxes"
                break
    nxt = [columns[i][pos[i]] if pos[i] < len(columns[i]) else None for i in range(n)]
    return Bucketing(chunks, nxt, stopped, stop_low, top, boxes)


# -- table --------------------------------------------------------------------------------------

@dataclass(eq=False)
class Cell:
    """A ``<td>`` of the event grid. ``kind`` is an event kind, ``time`` or ``empty``;
    ``filler`` marks the box of an event below the page (the bottom row's filling)."""

    kind: str
    top: int
    rowspan: int = 1
    event: Event | None = None
    clock: str = ""
    day: str = ""  # weekday and date, only when the date changed since the row above
    date: str = ""
    filler: bool = False


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def time_cells(chunks: Sequence[Chunk], today: float) -> list[tuple[str, str, str]]:
    """(clock, weekday, date) per row; weekday and date only where the date differs from the
    one printed above (the first row compares with today, so today's date is never shown)."""
    out = []
    shown = _day(today)
    for chunk in chunks:
        lt = time.localtime(chunk.when)
        clock = time.strftime("%H:%M:%S", lt)
        day = _day(chunk.when)
        if day != shown:
            out.append((clock, time.strftime("%a", lt), time.strftime("%d %b %Y", lt)))
            shown = day
        else:
            out.append((clock, "", ""))
    return out


def _stretches(column: int, cell: Cell) -> bool:
    # the changes column (1) keeps changes one row tall; only its empty spacers stretch
    return column != 1 or cell.kind in ("spacer", "empty")


def layout_table(chunks: Sequence[Chunk], next_events: Sequence[Event | None], *,
                 nobubble: bool = False, today: float | None = None) -> list[list[Cell]]:
    """The event grid's table rows, each a list of cells in column order (time, changes,
    builders…; columns covered by a ``rowspan`` from above have no cell)."""
    ncols = 1 + (len(chunks[0].cells) if chunks else len(next_events))
    slots: list[list[Event | tuple[str, str, str] | None]] = [[] for _ in range(ncols)]
    for chunk, stamp in zip(chunks, time_cells(chunks, time.time() if today is None else today),
                            strict=True):
        height = max(1, *(len(c) for c in chunk.cells)) if chunk.cells else 1
        slots[0].extend([None] * (height - 1) + [stamp])
        for j, cell in enumerate(chunk.cells, start=1):
            slots[j].extend([None] * (height - len(cell)) + list(cell))
    nrows = len(slots[0])
    fillers: set[int] = set()
    for j in range(1, ncols):
        nxt = next_events[j - 1] if j - 1 < len(next_events) else None
        if nrows and slots[j][-1] is None and nxt is not None:
            slots[j][-1] = nxt
            fillers.add(j)
    rows: list[list[Cell]] = [[] for _ in range(nrows)]
    for j in range(ncols):
        placed: list[Cell] = []
        current: Cell | None = None
        for r in range(nrows - 1, -1, -1):
            slot = slots[j][r]
            if slot is None:
                if not nobubble and current is not None and _stretches(j, current):
                    current.top = r
                    current.rowspan += 1
                else:
                    current = Cell("empty", r)
                    placed.append(current)
            elif isinstance(slot, tuple):
                current = Cell("time", r, clock=slot[0], day=slot[1], date=slot[2])
                placed.append(current)
            else:
                current = Cell(slot.kind, r, event=slot,
                               filler=(j in fillers and r == nrows - 1))
                placed.append(current)
        for cell in reversed(placed):
            rows[cell.top].append(cell)
    return rows


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


def _json(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def _newest_builds(conn: Connection, wanted: Sequence[tuple[BuilderInfo, int, float | None]],
                   lo: float | None) -> dict[int, list[BuildInfo]]:
    """builderid -> its newest ``limit`` builds started in [lo, hi], newest first, for each
    (builder, limit, hi): one ``UNION ALL`` of index range scans on
    ``(builderid, started_at)``."""
    out: dict[int, list[BuildInfo]] = {b.id: [] for b, _limit, _hi in wanted}
    names = {b.id: b.name for b, _limit, _hi in wanted}
    parts = []
    for b, limit, hi in wanted:
        q = sa.select(builds).where(builds.c.builderid == b.id)
        if hi is not None:
            q = q.where(builds.c.started_at <= hi)
        if lo is not None:
            q = q.where(builds.c.started_at >= lo)
        parts.append(q.order_by(builds.c.started_at.desc()).limit(limit))
    if not parts:
        return out
    for first in range(0, len(parts), 200):  # SQLite allows 500 terms in a compound select
        group = parts[first:first + 200]
        stmt = group[0] if len(group) == 1 else sa.union_all(
            *(p.subquery().select() for p in group))
        for r in conn.execute(stmt):
            out[r.builderid].append(BuildInfo(
                id=r.id, builderid=r.builderid, builder=names[r.builderid], number=r.number,
                buildrequestid=r.buildrequestid, slave=None, reason=r.reason or "",
                started_at=r.started_at, finished_at=r.finished_at, results=r.results,
                text=[], stop_requested=r.stop_requested))  # the grid never shows it
    for lst in out.values():
        lst.sort(key=lambda b: (b.started_at, b.number), reverse=True)
    return out


def _steps(conn: Connection, buildids: Sequence[int], raw: dict[int, tuple[str, str]]
           ) -> dict[int, list[StepInfo]]:
    """buildid -> its started steps, in order. Their text and URLs are left in ``raw``
    (step id -> JSON texts) and decoded by :func:`_finish_shown` for the steps shown only;
    logs are read there too."""
    out: dict[int, list[StepInfo]] = {}
    if not buildids:
        return out
    cols = [steps.c.id, steps.c.buildid, steps.c.number, steps.c.name, steps.c.started_at,
            steps.c.finished_at, steps.c.results, steps.c.text, steps.c.urls, steps.c.hidden]
    for r in conn.execute(sa.select(*cols).where(steps.c.buildid.in_(sorted(buildids)),
                                                 steps.c.started_at.isnot(None))
                          .order_by(steps.c.buildid, steps.c.number)):
        out.setdefault(r.buildid, []).append(StepInfo(
            id=r.id, buildid=r.buildid, number=r.number, name=r.name,
            started_at=r.started_at, finished_at=r.finished_at, results=r.results,
            text=[], urls={}, statistics={}, hidden=bool(r.hidden)))
        raw[r.id] = (r.text, r.urls)
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


def _matching(conn: Connection, found: list[BuildInfo], filters: Filters) -> set[int]:
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
        cond = changes.c.branch.in_(named)
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


def _slave_events(conn: Connection, limit: int, hi: float | None, lo: float | None
                  ) -> list[tuple[float, str, str]]:
    """The newest ``limit`` slave connects/disconnects in [lo, hi] as (time, slave, kind),
    newest first: per kind a backward range of the ``(kind, created_at)`` index, so no
    sort of every such event ever recorded."""
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
        slave = _json(r.payload, {}).get("slave")
        if isinstance(slave, str):
            out.append((r.created_at, slave, r.kind))
    return out


def _finish_shown(conn: Connection, found: Iterable[BuildInfo],
                  raw: dict[int, tuple[str, str]]) -> None:
    """Decode the text and URLs of the shown builds' steps and read their logs (one
    query)."""
    by_step = {st.id: st for b in found for st in b.steps}
    if not by_step:
        return
    for sid, st in by_step.items():
        text, urls = raw.get(sid, ("", ""))
        st.text = _json(text, [])
        st.urls = _json(urls, {}) if urls and urls != "{}" else {}
    ids = sorted({st.buildid for st in by_step.values()})
    for r in conn.execute(sa.select(logs).join(steps, steps.c.id == logs.c.stepid)
                          .where(steps.c.buildid.in_(ids)).order_by(logs.c.stepid, logs.c.id)):
        st = by_step.get(r.stepid)
        if st is not None:
            st.logs.append(LogInfo(id=r.id, name=r.name, num_chunks=r.num_chunks,
                                   num_bytes=r.num_bytes, complete=bool(r.complete)))


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


def load(conn: Connection, builder_list: Sequence[BuilderInfo],
         slavenames: dict[str, Sequence[str]], filters: Filters, *, now: float,
         num_events: int, last_time: float | None = None, lower: float | None = None,
         show_events: bool = False, max_boxes: int = MAX_BOXES) -> Waterfall:
    """Read what a waterfall page of ``builder_list`` shows and cut it into rows.

    Statements: per round one for builds, one for their steps, one per build filter, one
    for changes and one for slave events (each only when that read must grow), then one for
    the logs of the steps shown; usually one round."""
    blist = [b for b in builder_list if b.id >= 0 and b.next_number > 0]
    ncols = len(builder_list) + 1
    first = max(4, math.ceil(num_events / ncols) + 2)
    build_cap = (num_events + 2) * (GROWTH if filters.narrows_builds else 1)
    point_cap = GROWTH * num_events + 2
    build_src = {b.id: _Source(min(first, build_cap), build_cap) for b in blist}
    change_src = _Source(min(first, point_cap), point_cap)
    event_src = _Source(min(num_events + 2, point_cap), point_cap)
    found: dict[int, list[BuildInfo]] = {b.id: [] for b in blist}
    keep: set[int] = set()
    have_steps: set[int] = set()
    raw_steps: dict[int, tuple[str, str]] = {}
    change_list: list[ChangeInfo] = []
    slave_events: list[tuple[float, str, str]] = []
    todo_builds = list(blist)
    todo_changes, todo_events = True, show_events
    streams: dict[int, tuple[list[Event], bool]] = {}
    rounds = 0
    while True:
        rounds += 1
        if todo_builds:
            # a grown read continues below what was read (ties at the old horizon read again)
            asks = []
            for b in todo_builds:
                src, have = build_src[b.id], found[b.id]
                if have:
                    ties = sum(1 for bld in have if bld.started_at == src.horizon)
                    asks.append((b, max(src.limit - len(have) + ties, 1), src.horizon))
                else:
                    asks.append((b, src.limit, last_time))
            got = _newest_builds(conn, asks, lower)
            new_builds = [bld for b in todo_builds for bld in got[b.id]
                          if bld.id not in have_steps]
            step_map = _steps(conn, [bld.id for bld in new_builds], raw_steps)
            for bld in new_builds:
                bld.steps = step_map.get(bld.id, [])
                have_steps.add(bld.id)
            keep |= (_matching(conn, new_builds, filters) if filters.narrows_builds
                     else {bld.id for bld in new_builds})
            for b, limit, _hi in asks:
                known_ids = {bld.id for bld in found[b.id]}
                found[b.id].extend(bld for bld in got[b.id] if bld.id not in known_ids)
                build_src[b.id].horizon = (got[b.id][-1].started_at
                                           if len(got[b.id]) >= limit else None)
        if todo_changes:
            change_list = _newest_changes(conn, change_src.limit, last_time, lower, filters)
            change_src.horizon = (change_list[-1].when
                                  if len(change_list) >= change_src.limit else None)
        if todo_events:
            slave_events = _slave_events(conn, event_src.limit, last_time, lower)
            event_src.horizon = (slave_events[-1][0]
                                 if len(slave_events) >= event_src.limit else None)
        columns = [with_spacers(change_stream(change_list), now)]
        horizons: list[float | None] = [change_src.horizon]
        for b in builder_list:
            if b.id not in streams or todo_events or b in todo_builds:
                points = [point_event(t, slave, kind.split(".", 1)[1])
                          for t, slave, kind in slave_events
                          if slave in slavenames.get(b.name, ())] if show_events else []
                shown = [bld for bld in found.get(b.id, []) if bld.id in keep]
                streams[b.id] = (with_spacers(builder_stream(shown, points), now),
                                 bool(points))
            column, has_points = streams[b.id]
            columns.append(column)
            limits = [build_src[b.id].horizon if b.id in build_src else None]
            if has_points:
                limits.append(event_src.horizon)
            known = [h for h in limits if h is not None]
            horizons.append(max(known) if known else None)
        result = bucket(columns, now=now, num_events=num_events, last_time=last_time,
                        lower=lower, horizons=horizons, max_boxes=max_boxes)
        if result.stopped != "horizon" or rounds >= MAX_ROUNDS:
            break
        top, low = result.top, result.stop_low if result.stop_low is not None else now
        # how far back the page will probably reach: extrapolate from the rows made so far
        kept = len(result.chunks)
        if kept:
            need = min(num_events / kept, max_boxes / max(result.boxes, 1))
            target = top - max(top - low, WINDOW) * max(need, 1.0) * 1.1
        else:
            target = low - max(top - low, WINDOW)

        def blocks(src: _Source, floor: float = target) -> bool:
            return src.horizon is not None and src.horizon > floor

        todo_builds = [b for b in blist
                       if blocks(build_src[b.id]) and build_src[b.id].grow(top, target)]
        todo_changes = blocks(change_src) and change_src.grow(top, target)
        todo_events = show_events and blocks(event_src) and event_src.grow(top, target)
        if not (todo_builds or todo_changes or todo_events):
            break
    shown_builds = {e.build.id: e.build for chunk in result.chunks for cell in chunk.cells
                    for e in cell if e.build is not None}
    shown_builds.update({e.build.id: e.build for e in result.next_events
                         if e is not None and e.build is not None})
    _finish_shown(conn, shown_builds.values(), raw_steps)
    return Waterfall(list(builder_list), result, rounds)


# -- the two rows above the grid: last build and current activity -------------------------------

@dataclass
class BuilderHead:
    """A builder's "last build" and "current activity" boxes, and whether it is failing
    (web spec §4.3: offline, last finished build not a success, or a running build with a
    failed step)."""

    name: str
    summary: BuilderSummary
    last: BuildInfo | None
    failed_tests: int = 0
    failing: bool = False


def _failed_tests(conn: Connection, buildids: Sequence[int]) -> dict[int, int]:
    """buildid -> sum of its steps' ``tests-failed`` statistic. One query."""
    out: dict[int, int] = {}
    if not buildids:
        return out
    for r in conn.execute(sa.select(steps.c.buildid, steps.c.statistics)
                          .where(steps.c.buildid.in_(sorted(buildids)))):
        value = _json(r.statistics, {})
        n = value.get("tests-failed") if isinstance(value, dict) else None
        if isinstance(n, int | float) and not isinstance(n, bool):
            out[r.buildid] = out.get(r.buildid, 0) + int(n)
    return out


def builder_heads(conn: Connection, cfg: MasterConfig, rows: dict[str, BuilderInfo],
                  names: Sequence[str], *, branches: set[str | None] | None = None,
                  need_failing: bool = False, now: float | None = None
                  ) -> tuple[dict[str, BuilderHead], dict[tuple[str, int], float | None]]:
    """The heads of ``names`` and the ETAs of their running builds ((builder, number) ->
    seconds left). A fixed handful of queries whatever the history."""
    now = time.time() if now is None else now
    summaries = queries.builder_summaries(conn, cfg, names, rows=rows)
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
                                  tests.get(build.id, 0) if build else 0, failing)
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


__all__ = ["Bucketing", "BuilderHead", "Cell", "Chunk", "Event", "Filters", "Waterfall",
           "bucket", "build_events", "builder_heads", "builder_stream", "change_stream",
           "layout_table", "load", "lower_bound", "point_event", "time_cells",
           "with_spacers"]
