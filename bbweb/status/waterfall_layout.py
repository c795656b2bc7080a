"""How the waterfall turns time into table rows: pure functions over events,
unit-testable without a database.

Every column (changes, one per builder) is a stream of events, newest first: changes,
build-start boxes, steps, point events (a slave connecting) and the empty spacers that stand
for idle time (:func:`with_spacers`). Rows are made by :func:`bucket`: take the newest head
of all streams, put every event that started within ``WINDOW`` seconds of it into the row,
repeat. Buildbot 0.8 did only that, so a change could sit beside a build that started
seconds before it, and two builds share one time; here a row also stops at the second of
its newest build start or change (``ANCHORS``): each of them sits at its own time, beside
only what started in the same second or later. :func:`layout_table` turns the rows into
table rows: each row is as tall as its fullest cell, cells are bottom-justified, the last
slot of a column is filled with the event just below the page, and empty slots are absorbed
by the box below them (``rowspan``) so that a step's box stretches over its duration.

The events carry the reader's records (``build``, ``step``, ``change``) without looking
into them beyond the times, step numbers and ``hidden`` flags used here.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

WINDOW = 10.0  # events starting this close to a row's newest event share its row
# boxes that stand for a moment (a build starting, a change arriving): a row holds only
# those of the same second, so each sits beside what happened at the time its row shows
ANCHORS = frozenset(("build", "change"))
GAP = 2.0  # idle time longer than this is shown as an empty spacer
MAX_BOXES = 4000  # a page ends after the row that reaches this many boxes


class StepTimes(Protocol):
    """What the layout reads of a step."""

    number: int
    started_at: float | None
    finished_at: float | None
    hidden: bool


class BuildTimes(Protocol):
    """What the layout reads of a build: its times and its steps in order."""

    started_at: float
    finished_at: float | None

    @property
    def steps(self) -> Sequence[StepTimes]: ...


class ChangeTime(Protocol):
    number: int
    when: float


# -- events and streams -------------------------------------------------------------------------

@dataclass(eq=False, slots=True)
class Event:
    """One box of a column. ``finish`` is None while it runs; a point event finishes when it
    starts. ``rank`` orders events that start at the same moment (a build's steps above its
    start box)."""

    kind: str  # build | step | change | point | spacer
    start: float
    finish: float | None
    rank: int = 0
    build: Any = None
    step: Any = None
    change: Any = None
    text: tuple[str, ...] = ()


_NEWEST_FIRST = attrgetter("start", "rank")


def build_events(build: BuildTimes) -> list[Event]:
    """A build's boxes: its started steps (finished hidden ones left out) and its start box."""
    out = [Event("build", build.started_at, build.finished_at, 0, build)]
    for st in build.steps:
        if st.started_at is None or (st.hidden and st.finished_at is not None):
            continue
        out.append(Event("step", st.started_at, st.finished_at, st.number + 1, build, st))
    return out


def builder_stream(found: Iterable[BuildTimes], points: Iterable[Event] = ()) -> list[Event]:
    """A builder column, newest first: steps above their build's start box, point events
    interleaved by time."""
    evs = [e for b in found for e in build_events(b)]
    evs.extend(points)
    evs.sort(key=_NEWEST_FIRST, reverse=True)
    return evs


def change_stream(found: Iterable[ChangeTime]) -> list[Event]:
    """The changes column, newest first. A change is a point in time."""
    evs = [Event("change", c.when, c.when, c.number, change=c) for c in found]
    evs.sort(key=_NEWEST_FIRST, reverse=True)
    return evs


def point_event(when: float, *text: str) -> Event:
    """A moment in a builder's column (a slave connecting), shown as its lines of text."""
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

@dataclass(slots=True)
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
    started less than ``WINDOW`` seconds before it, but none from before the second of
    the newest build start or change among them. Rows whose earliest event is newer than
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
        # the columns with events in the window, and its newest build start or change
        visiting: list[int] = []
        anchor: float | None = None
        while heap and -heap[0][0] > low:
            i = heapq.heappop(heap)[1]
            visiting.append(i)
            col, p, end = columns[i], pos[i], lens[i]
            while p < end and col[p].start > low:
                if col[p].kind in ANCHORS:
                    if anchor is None or col[p].start > anchor:
                        anchor = col[p].start
                    break
                p += 1
        cut = -math.inf if anchor is None else math.floor(anchor)
        cells: list[Sequence[Event]] = [empty] * n
        earliest = t
        taken = 0
        for i in visiting:
            col, p, end = columns[i], pos[i], lens[i]
            start = p
            while p < end and col[p].start > low and col[p].start >= cut:
                p += 1
            if p > start:
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

@dataclass(eq=False, slots=True)
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
        day = time.strftime("%Y-%m-%d", lt)
        if day != shown:
            out.append((clock, time.strftime("%a", lt), time.strftime("%d %b %Y", lt)))
            shown = day
        else:
            out.append((clock, "", ""))
    return out


def _empties(rows: list[list[Cell]], top: int, count: int, nobubble: bool) -> None:
    """``count`` empty slots from row ``top`` down: one stretched empty cell, or (nobubble)
    one cell each."""
    if nobubble:
        for r in range(top, top + count):
            rows[r].append(Cell("empty", r))
    else:
        rows[top].append(Cell("empty", top, count))


def layout_table(chunks: Sequence[Chunk], next_events: Sequence[Event | None], *,
                 nobubble: bool = False, today: float | None = None) -> list[list[Cell]]:
    """The event grid's table rows, each a list of cells in column order (time, changes,
    builders…; columns covered by a ``rowspan`` from above have no cell).

    A chunk is as tall as its fullest cell; each column's events sit at the bottom of the
    chunk. Going down a column, the empty slots above a box are absorbed by it (it starts
    higher, with a ``rowspan``), except in the changes column where a change stays one row
    tall and the empty slots above it make one empty cell; empty slots at the bottom of the
    page make one empty cell too, unless the event just below the page (``next_events``)
    fills the last one. With ``nobubble`` every empty slot is an empty cell of its own. The
    work is per box, not per slot, so a tall, sparse page costs what its boxes cost."""
    ncols = 1 + (len(chunks[0].cells) if chunks else len(next_events))
    stamps = time_cells(chunks, time.time() if today is None else today)
    heights = [max(1, max(map(len, chunk.cells), default=0)) for chunk in chunks]
    nrows = sum(heights)
    rows: list[list[Cell]] = [[] for _ in range(nrows)]
    # the time column: one cell per chunk, at its bottom, stretched over the chunk
    r = 0
    for height, (clock, day, date) in zip(heights, stamps, strict=True):
        if nobubble:
            _empties(rows, r, height - 1, True)
            rows[r + height - 1].append(Cell("time", r + height - 1, 1, None, clock, day, date))
        else:
            rows[r].append(Cell("time", r, height, None, clock, day, date))
        r += height
    # where each column's events sit: (row of the first, events) per chunk
    placed: list[list[tuple[int, Sequence[Event]]]] = [[] for _ in range(ncols)]
    r = 0
    for chunk, height in zip(chunks, heights, strict=True):
        bottom = r + height
        for j, cell in enumerate(chunk.cells, start=1):
            if cell:
                placed[j].append((bottom - len(cell), cell))
        r = bottom
    for j in range(1, ncols):
        column = placed[j]
        nxt = next_events[j - 1] if j - 1 < len(next_events) else None
        filler = None
        if nrows and nxt is not None and not (column and column[-1][0] + len(column[-1][1])
                                              == nrows):
            filler = nxt
            column.append((nrows - 1, (nxt,)))
        stiff = j == 1  # the changes column: only its spacers stretch
        free = 0  # the first row not yet covered
        for first, events in column:
            for k, e in enumerate(events):
                r = first + k
                gap = r - free
                if gap and (nobubble or (stiff and e.kind != "spacer")):
                    _empties(rows, free, gap, nobubble)
                    gap = 0
                rows[r - gap].append(Cell(e.kind, r - gap, gap + 1, e,
                                          filler=e is filler and r == nrows - 1))
                free = r + 1
        if free < nrows:
            _empties(rows, free, nrows - free, nobubble)
    return rows


__all__ = ["ANCHORS", "GAP", "MAX_BOXES", "WINDOW", "Bucketing", "Cell", "Chunk", "Event", "bucket",
           "build_events", "builder_stream", "change_stream", "layout_table", "point_event",
           "time_cells", "with_spacers"]
