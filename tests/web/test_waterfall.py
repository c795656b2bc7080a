"""``/waterfall`` and ``/waterfall/help``: the layout rules on synthetic
streams, then the page over history made through the engine, on SQLite and PostgreSQL.

Pages are checked by rebuilding the event grid from the HTML (rowspans included), so a
test says which box sits in which column and row."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import sqlalchemy as sa

from bbweb.db import schema
from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.changes import ChangeInput, add_change
from bbweb.status import waterfall as wf
from bbweb.status import waterfall_layout as wl
from bbweb.status.records import BuildInfo, ChangeInfo, StepInfo
from tests.support.history import claim, force, run
from tests.support.querycount import counting

EVIL = '<script>alert("b")</script>'

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Test Project'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('slave1', 'pw'), BuildSlave('slave2', 'pw'),
               BuildSlave('slave3', 'pw')]
two = BuildFactory([ShellCommand(command=['make'], name='compile'),
                    ShellCommand(command=['make', 'test'], name='test')])
one = BuildFactory([ShellCommand(command=['make', 'html'], name='html')])
c['builders'] = [
    BuilderConfig(name='runtests', slavenames=['slave1', 'slave2'], factory=two,
                  category='core'),
    BuilderConfig(name='docs', slavenames=['slave1'], factory=one, category='doc'),
    BuilderConfig(name='pkg10', slavenames=['slave1'], factory=two, category='core'),
    BuilderConfig(name='pkg9', slavenames=['slave1'], factory=one),
    BuilderConfig(name='EVIL_NAME', slavenames=['slave3'], factory=one),
]
c['schedulers'] = [
    SingleBranchScheduler(name='all', branch=None, builderNames=['runtests', 'docs']),
    ForceScheduler(name='force', builderNames=['runtests', 'docs', 'pkg10', 'pkg9',
                                               'EVIL_NAME']),
]
c['status'] = [WebStatus(http_port=8010, NUM_EVENTS_MAX
                         revlink='http://revs.example.org/r/%s',
                         changecommentlink=(r'#(\\d+)', r'http://bugs.example.org/\\1'))]
""".replace("EVIL_NAME", EVIL)
EVIL_BUILDER = EVIL


# -- reading the grid back from the HTML --------------------------------------------------------

@dataclass
class Box:
    row: int
    col: int
    rowspan: int
    cls: str
    text: str = ""
    hrefs: list[str] = field(default_factory=list)
    title: str = ""


class _Waterfall(HTMLParser):
    """The header names and the boxes of ``<table class="waterfall">``, each at the column
    and (top) row it occupies."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.in_table = self.in_body = self.in_header = False
        self.header: list[str] = []
        self.boxes: list[Box] = []
        self.row = -1
        self.taken: set[tuple[int, int]] = set()
        self.cell: Box | None = None
        self.head_text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("class") == "waterfall":
            self.in_table = True
        elif not self.in_table:
            return
        elif tag == "tbody":
            self.in_body = True
        elif tag == "tr" and a.get("class") == "Header":
            self.in_header = True
        elif tag == "th" and self.in_header:
            self.head_text = []
        elif tag == "tr" and self.in_body:
            self.row += 1
        elif tag == "td" and self.in_body:
            col = 0
            while (self.row, col) in self.taken:
                col += 1
            span = int(a.get("rowspan") or 1)
            for k in range(span):
                self.taken.add((self.row + k, col))
            self.cell = Box(self.row, col, span, a.get("class") or "")
        elif tag == "a" and self.cell is not None:
            if a.get("href"):
                self.cell.hrefs.append(a["href"] or "")
            if a.get("title") and not self.cell.title:
                self.cell.title = a["title"] or ""
        elif tag == "br" and self.cell is not None:
            self.cell.text += "\n"

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.in_table:
            self.in_table = False
        elif tag == "td" and self.cell is not None:
            self.cell.text = self.cell.text.strip()
            self.boxes.append(self.cell)
            self.cell = None
        elif tag == "th" and self.head_text is not None:
            self.header.append("".join(self.head_text).strip())
            self.head_text = None
        elif tag == "tr":
            self.in_header = False

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.text += data
        elif self.head_text is not None:
            self.head_text.append(data)


@dataclass
class Grid:
    header: list[str]
    boxes: list[Box]

    def column(self, name: str) -> list[Box]:
        """The boxes of one column, top to bottom (empty cells left out)."""
        col = self.header.index(name)
        return [b for b in self.boxes if b.col == col and b.cls]

    def texts(self, name: str) -> list[str]:
        return [b.text for b in self.column(name)]

    def find(self, name: str, text: str) -> Box:
        found = [b for b in self.column(name) if text in b.text]
        assert found, (name, text, self.texts(name))
        return found[0]

    @property
    def rows(self) -> int:
        return max((b.row + b.rowspan for b in self.boxes), default=0)


def grid_of(html: str) -> Grid:
    p = _Waterfall()
    p.feed(html)
    return Grid(p.header, p.boxes)


def page(client: Any, url: str, status: int = 200) -> str:
    resp = client.get(url)
    assert resp.status_code == status, (url, resp.status_code, resp.data[:600])
    return resp.get_data(as_text=True)


# -- the layout rules (no database) -------------------------------------------------------------

def ev(kind: str, start: float, finish: float | None = None, **kw: Any) -> wl.Event:
    return wl.Event(kind, start, start if finish is None else finish, **kw)


def test_events_ten_seconds_apart_share_a_row_across_columns():
    a = [ev("point", 100), ev("point", 95), ev("point", 80)]
    b = [ev("point", 92), ev("point", 60)]
    rows = wl.bucket([a, b], now=200, num_events=10)
    assert [[len(c) for c in ch.cells] for ch in rows.chunks] == [[2, 1], [1, 0], [0, 1]]
    assert [ch.when for ch in rows.chunks] == [92, 80, 60]
    assert rows.stopped == "exhausted" and rows.next_events == [None, None]


def test_a_row_reaches_no_further_back_than_the_second_of_its_newest_build_or_change():
    """Within the ten seconds a row may span, a build start or a change ends it at its
    second: what started before sits in a row of its own time, never beside it."""
    builds = [ev("step", 106.5, 107), ev("build", 106.5, 108),  # build 1
              ev("spacer", 104, 106.5),
              ev("step", 102, 103), ev("step", 100, 101), ev("build", 100, 104)]  # build 0
    changes = [ev("spacer", 105.25, 200), ev("change", 105.25)]
    rows = wl.bucket([changes, builds], now=200, num_events=10)
    assert [(ch.when, [[e.kind for e in c] for c in ch.cells]) for ch in rows.chunks] == [
        (106.5, [[], ["step", "build"]]),
        (105.25, [["spacer", "change"], []]),
        (100, [[], ["spacer", "step", "step", "build"]])]
    # a change and the build it started in the same second share a row
    rows = wl.bucket([[ev("change", 106.2)], builds[:2]], now=200, num_events=10)
    assert [(ch.when, [len(c) for c in ch.cells]) for ch in rows.chunks] == [(106.2, [1, 2])]
    # without builds or changes, ten seconds make a row, as in Buildbot 0.8
    steps = [ev("step", 109), ev("point", 105), ev("step", 100)]
    assert [ch.when for ch in wl.bucket([[], steps], now=200, num_events=10).chunks] == [100]


def test_rows_are_limited_and_bounded_in_time():
    col = [ev("point", t) for t in (100, 80, 60, 40, 20)]
    rows = wl.bucket([col], now=200, num_events=2)
    assert [ch.when for ch in rows.chunks] == [100, 80] and rows.stopped == "rows"
    assert rows.next_events[0].start == 60
    # rows newer than last_time are made, not kept
    assert [ch.when for ch in wl.bucket([col], now=200, num_events=9, last_time=70).chunks] \
        == [60, 40, 20]
    rows = wl.bucket([col], now=200, num_events=9, lower=50)
    assert [ch.when for ch in rows.chunks] == [100, 80, 60] and rows.stopped == "lower"
    # a column read only down to 65 must not let a row reach below it: the row at 60 would
    # take events from (50, 60]
    rows = wl.bucket([col], now=200, num_events=9, horizons=[65])
    assert [ch.when for ch in rows.chunks] == [100, 80] and rows.stopped == "horizon"
    # the box budget ends the page after the row that reaches it
    assert len(wl.bucket([col], now=200, num_events=9, max_boxes=2).chunks) == 2


def test_spacers_stand_for_idle_time_and_running_events_do_not_get_one():
    stream = [ev("step", 90, 95), ev("step", 50, 89), ev("build", 40, 60)]
    spaced = wl.with_spacers(stream, now=100)
    assert [(e.kind, e.start, e.finish) for e in spaced] == [
        ("spacer", 95, 100), ("step", 90, 95), ("step", 50, 89), ("build", 40, 60)]
    assert [e.kind for e in wl.with_spacers([wl.Event("step", 90, None)], now=100)] == ["step"]


def _build(number: int, start: float, steps: list[tuple[float, float | None, bool]]
           ) -> BuildInfo:
    b = BuildInfo(id=number, builderid=1, builder="b", number=number, buildrequestid=1,
                  slave=None, reason="", started_at=start, finished_at=None, results=None,
                  text=[], stop_requested=None)
    b.steps = [StepInfo(id=10 * number + i, buildid=number, number=i, name=f"s{i}",
                        started_at=s, finished_at=f, results=0 if f else None, text=[],
                        urls={}, statistics={}, hidden=h) for i, (s, f, h) in enumerate(steps)]
    return b


def test_builder_stream_puts_steps_above_their_build_and_skips_hidden_finished_steps():
    b = _build(1, 100, [(100, 101, False), (102, 103, True), (104, None, True)])
    stream = wl.builder_stream([b], [wl.point_event(103, "slave1", "connected")])
    assert [(e.kind, e.step.name if e.step else "") for e in stream] == [
        ("step", "s2"), ("point", ""), ("step", "s0"), ("build", "")]


def _chunks(*rows: tuple[float, list[list[wl.Event]]]) -> list[wl.Chunk]:
    return [wl.Chunk(when, cells) for when, cells in rows]


def _layout(rows: list[list[wl.Cell]]) -> dict[int, list[tuple[int, int, str]]]:
    """column -> [(top, rowspan, kind)] read back from table rows (as a browser would)."""
    taken: set[tuple[int, int]] = set()
    out: dict[int, list[tuple[int, int, str]]] = {}
    for r, cells in enumerate(rows):
        col = 0
        for cell in cells:
            while (r, col) in taken:
                col += 1
            for k in range(cell.rowspan):
                taken.add((r + k, col))
            out.setdefault(col, []).append((r, cell.rowspan, cell.kind))
    return out


def test_cells_are_bottom_justified_and_boxes_stretch_upwards():
    step = ev("step", 100, 130)
    chunks = _chunks((99, [[], [ev("step", 101, 102), ev("build", 99, 130)]]),
                     (90, [[ev("change", 90)], [step]]))
    cols = _layout(wl.layout_table(chunks, [None, None], today=100))
    # time column: one box per chunk, as tall as the chunk
    assert cols[0] == [(0, 2, "time"), (2, 1, "time")]
    # changes column: nothing in the first chunk (one empty spacer), the change at the bottom
    assert cols[1] == [(0, 2, "empty"), (2, 1, "change")]
    assert cols[2] == [(0, 1, "step"), (1, 1, "build"), (2, 1, "step")]
    # a one-event cell in a two-row chunk sits at the bottom; the box stretches over the gap
    chunks = _chunks((99, [[ev("change", 99)], [ev("step", 99)]]),
                     (80, [[ev("change", 85), ev("change", 80)], [ev("build", 80)]]))
    cols = _layout(wl.layout_table(chunks, [None, None], today=100))
    assert cols[2] == [(0, 1, "step"), (1, 2, "build")]
    # changes never stretch: the empty slot above the lower change becomes a spacer
    assert cols[1] == [(0, 1, "change"), (1, 1, "change"), (2, 1, "change")]
    chunks = _chunks((99, [[ev("change", 99), ev("change", 98)], [ev("step", 99)]]),
                     (80, [[], [ev("build", 80)]]))
    cols = _layout(wl.layout_table(chunks, [None, None], today=100))
    assert cols[1][:2] == [(0, 1, "change"), (1, 1, "change")]
    assert cols[2] == [(0, 2, "step"), (2, 1, "build")]
    # nobubble: every empty slot is its own empty cell
    cols = _layout(wl.layout_table(chunks, [None, None], nobubble=True, today=100))
    assert cols[2] == [(0, 1, "empty"), (1, 1, "step"), (2, 1, "build")]


def test_the_bottom_row_is_filled_with_the_event_below_the_page():
    chunks = _chunks((99, [[ev("change", 99)], []]))
    below = ev("step", 50, 120)
    rows = wl.layout_table(chunks, [None, below], today=100)
    assert [c.kind for c in rows[0]] == ["time", "change", "step"]
    assert rows[0][2].filler and rows[0][2].event is below


def _slot_layout(chunks: list[wl.Chunk], next_events: list[wl.Event | None], nobubble: bool,
                 today: float) -> list[list[tuple[Any, ...]]]:
    """The layout rules spelled out slot by slot (the oracle for :func:`wl.layout_table`,
    which works box by box): fill a rows x columns matrix bottom-justified per chunk, put
    the event below the page in an empty last slot, then walk each column upwards letting
    an empty slot join the box below it (not a change's)."""
    ncols = 1 + (len(chunks[0].cells) if chunks else len(next_events))
    slots: list[list[Any]] = [[] for _ in range(ncols)]
    for chunk, stamp in zip(chunks, wl.time_cells(chunks, today), strict=True):
        height = max([1, *(len(c) for c in chunk.cells)])
        slots[0] += [None] * (height - 1) + [("time", *stamp)]
        for j, cell in enumerate(chunk.cells, start=1):
            slots[j] += [None] * (height - len(cell)) + list(cell)
    nrows = len(slots[0])
    fillers = set()
    for j in range(1, ncols):
        if nrows and slots[j][-1] is None and next_events[j - 1] is not None:
            slots[j][-1] = next_events[j - 1]
            fillers.add(j)
    rows: list[list[tuple[Any, ...]]] = [[] for _ in range(nrows)]
    for j in range(ncols):
        placed: list[list[Any]] = []
        below: list[Any] | None = None
        for r in range(nrows - 1, -1, -1):
            slot = slots[j][r]
            if slot is None:
                if not nobubble and below is not None and (j != 1 or below[0] in ("spacer",
                                                                                  "empty")):
                    below[1] -= 1
                    below[2] += 1
                    continue
                below = ["empty", r, 1, None, "", "", "", False]
            elif isinstance(slot, tuple):
                below = ["time", r, 1, None, *slot[1:], False]
            else:
                below = [slot.kind, r, 1, slot, "", "", "", j in fillers and r == nrows - 1]
            placed.append(below)
        for cell in reversed(placed):
            rows[cell[1]].append(tuple(cell))
    return rows


def test_the_table_follows_the_slot_by_slot_rules_on_random_pages():
    import random

    rnd = random.Random(1234)
    kinds = {0: ("change", "change", "spacer"), 1: ("step", "step", "build", "spacer", "point")}
    for _case in range(400):
        ncols = rnd.randint(1, 5)
        t = 10_000.0
        chunks = []
        for _ in range(rnd.randint(0, 7)):
            cells = []
            for col in range(ncols):
                evs = []
                for _k in range(rnd.choice((0, 0, 1, 1, 2, 3))):
                    t -= rnd.random()
                    evs.append(wl.Event(rnd.choice(kinds[min(col, 1)]), t, t + 5))
                cells.append(evs)
            chunks.append(wl.Chunk(t, cells))
            t -= 20
        below = [rnd.choice((None, wl.Event(rnd.choice(kinds[min(c, 1)]), 1.0, 2.0)))
                 for c in range(ncols)]
        nobubble = rnd.random() < 0.3
        got = [[(c.kind, c.top, c.rowspan, c.event, c.clock, c.day, c.date, c.filler)
                for c in row] for row in wl.layout_table(chunks, below, nobubble=nobubble,
                                                         today=10_000.0)]
        assert got == _slot_layout(chunks, below, nobubble, 10_000.0), (chunks, below, nobubble)


def test_the_time_column_shows_the_date_when_it_changes():
    today = time.mktime((2024, 3, 5, 12, 0, 0, 0, 0, -1))
    yesterday = today - 86400
    chunks = _chunks((today, [[ev("change", today)]]), (today - 60, [[ev("change", 1)]]),
                     (yesterday, [[ev("change", 1)]]), (yesterday - 60, [[ev("change", 1)]]))
    stamps = wl.time_cells(chunks, today)
    assert stamps[0] == ("12:00:00", "", "") and stamps[1] == ("11:59:00", "", "")
    assert stamps[2] == ("12:00:00", "Mon", "04 Mar 2024")
    assert stamps[3] == ("11:59:00", "", "")


def test_change_stream_is_newest_first():
    c = [ChangeInfo(number=n, author="a", comments="", branch=None, revision=None,
                    revlink=None, when=w, category=None, repository="", codebase="",
                    project="", src=None, is_dir=False) for n, w in ((1, 5.0), (2, 9.0))]
    assert [e.change.number for e in wl.change_stream(c)] == [2, 1]


def test_lower_bound_rules():
    lb = wf.lower_bound
    assert lb(last_time=None, first_time=None, show_time=None, implicit=False, now=1e5) is None
    assert lb(last_time=None, first_time=None, show_time=None, implicit=True,
              now=1e5) == 1e5 - 86400
    assert lb(last_time=5e4, first_time=None, show_time=None, implicit=True, now=1e5) is None
    assert lb(last_time=5e4, first_time=10, show_time=100, implicit=True, now=1e5) == 5e4 - 100
    assert lb(last_time=None, first_time=10, show_time=None, implicit=True, now=1e5) == 10


# -- history through the engine -----------------------------------------------------------------

T0 = float(int(time.time()) - 3 * 3600)


def change(master: Any, t: float, **kw: Any) -> int:
    with master.db.write() as conn:
        return add_change(conn, master.config, ChangeInput(**kw), now=t)


def make_history(master: Any) -> dict[str, Any]:
    """runtests #0 (alice's change, SUCCESS), docs #0 (alice's change, SUCCESS),
    runtests #1 (forced on branch feature by bob, test FAILURE), pkg10 #0 (running, its
    compile step failed), a hostile change on branch feature; slave1 connected, slave2
    connected then disconnected, slave3 never seen (EVIL builder offline)."""
    cfg = master.config
    with master.db.write() as conn:
        sync_builders(conn, cfg)
        es.slave_connected(conn, "slave1", {}, now=T0)
        es.slave_connected(conn, "slave2", {}, now=T0)
    alice = change(master, T0, author="alice <alice@example.org>", comments="fix #12 now",
                   files=["a.c"], revision="abcdef0123456789", project="frob")
    r0 = claim(master, "slave1", T0 + 10)
    assert (r0.builder, r0.number) == ("runtests", 0)
    run(master, r0.buildid, {}, T0 + 11)
    d0 = claim(master, "slave1", T0 + 100)
    assert (d0.builder, d0.number) == ("docs", 0)
    run(master, d0.buildid, {}, T0 + 101)
    force(master, "runtests", reason="try feature", owner="bob", branch="feature")
    r1 = claim(master, "slave2", T0 + 200)
    assert (r1.builder, r1.number) == ("runtests", 1)
    run(master, r1.buildid, {"test": 1}, T0 + 201)
    evil = change(master, T0 + 300, author=f"{EVIL} <evil@example.org>",
                  comments=f'<img src=x onerror=alert(1)> "quoted" {EVIL}', branch="feature",
                  revision="feedface")
    force(master, "pkg10", reason=f"why {EVIL}", owner="carol")
    p0 = claim(master, "slave1", T0 + 400)
    assert (p0.builder, p0.number) == ("pkg10", 0)
    with master.db.write() as conn:
        spec = eb.next_step(conn, cfg, p0.buildid, now=T0 + 401)
        eb.append_step_log(conn, cfg, spec["id"], "stdio", [("o", "oops\n")])
        eb.finish_step(conn, cfg, spec["id"], 1, now=T0 + 402)
        eb.next_step(conn, cfg, p0.buildid, now=T0 + 403)
    with master.db.write() as conn:
        es.mark_disconnected(conn, es.slave_id(conn, "slave2"), "slave2")
    return {"alice": alice, "evil": evil}


@pytest.fixture
def wmaster(make_master):
    return make_master(CFG.replace("NUM_EVENTS_MAX", ""))


@pytest.fixture
def wapp(wmaster):
    application = wmaster.app()
    yield application
    application.extensions["bbweb"].db.dispose()


@pytest.fixture
def web(wapp):
    return wapp.test_client()


@pytest.fixture
def history(wmaster, web):
    return make_history(wmaster)


COLUMNS = ["changes", EVIL_BUILDER, "docs", "pkg9", "pkg10", "runtests"]


def test_columns_boxes_and_links(web, history):
    html = page(web, "/waterfall")
    g = grid_of(html)
    assert g.header[1:] == COLUMNS  # time zone first, then natural order (pkg9 < pkg10)
    rt = g.column("runtests")
    kinds = [(b.cls, b.text.splitlines()[0]) for b in rt]
    # newest first; a build's steps sit above its start box
    assert kinds[:6] == [("BuildStep box failure", "test"), ("BuildStep box success", "compile"),
                         ("BuildStep box start", "Build 1"),
                         ("BuildStep box success", "test"),
                         ("BuildStep box success", "compile"),
                         ("BuildStep box start", "Build 0")]
    b1 = g.find("runtests", "Build 1")
    assert b1.hrefs == ["./builders/runtests/builds/1"]
    assert b1.title == "Reason: A build was forced by 'bob': try feature"
    test1 = g.find("runtests", "failed")
    assert test1.hrefs == ["./builders/runtests/builds/1/steps/test",
                           "./builders/runtests/builds/1/steps/test/logs/stdio"]
    # boxes of one build sit in rows below newer events and above older ones
    assert g.find("runtests", "Build 0").row > test1.row
    # the running build of pkg10: its failed compile, then the running test step
    pk = g.column("pkg10")
    assert [b.cls for b in pk[:3]] == ["BuildStep box running", "BuildStep box failure",
                                       "BuildStep box start"]
    # changes: a link to the change, the author's name, the revision through revlink, and the
    # comment through changecommentlink
    ch = g.find("changes", "alice")
    assert ch.hrefs == [f"./changes/{history['alice']}",
                        "http://revs.example.org/r/abcdef0123456789",
                        "http://bugs.example.org/12"]
    assert ch.title == "fix #12 now"
    # the docs build and alice's change are in different rows (90 s apart), the time column
    # has one box per row
    assert g.find("docs", "Build 0").row < ch.row
    times = g.column(g.header[0])
    assert all(b.cls == "Time" for b in times) and re.fullmatch(r"\d\d:\d\d:\d\d",
                                                                 times[0].text.splitlines()[-1])
    assert '<link rel="alternate" type="application/rss+xml"' in html
    assert "waterfall/help" in html and "next page" not in html


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def test_each_build_and_each_change_sits_at_its_own_time(wmaster, web):
    """The sample master's first minutes: a build when the master starts (build 0 at t0),
    a change a few seconds later (t0 + 5.25), the build it starts a moment after (build 1
    at t0 + 6.5). Each sits in a row whose time is its own: the change is not beside
    build 0, which started before it existed, and build 1 has a time of its own. A change
    and a build started in the same second (build 2) share their row and its time."""
    t0 = float(int(time.time()) - 7200)
    force(wmaster, "runtests", reason="hourly")
    b0 = claim(wmaster, "slave2", t0)
    run(wmaster, b0.buildid, {}, t0)  # two steps, finished at t0 + 4
    c1 = change(wmaster, t0 + 5.25, author="carl", comments="one", files=["f"])
    b1 = claim(wmaster, "slave2", t0 + 6.5)
    run(wmaster, b1.buildid, {}, t0 + 6.5)
    c2 = change(wmaster, t0 + 30.2, author="dora", comments="two", files=["f"])
    b2 = claim(wmaster, "slave2", t0 + 30.6)
    assert (b0.number, b1.number, b2.number) == (0, 1, 2)
    g = grid_of(page(web, "/waterfall?builder=runtests"))
    times = g.column(g.header[0])

    def row_time(box: Box) -> str:
        """The time printed for the row a box belongs to (its bottom slot: boxes stretch
        upwards)."""
        bottom = box.row + box.rowspan - 1
        [label] = [t for t in times if t.row <= bottom < t.row + t.rowspan]
        return label.text.splitlines()[-1]

    def change_box(number: int) -> Box:
        [box] = [b for b in g.column("changes") if f"./changes/{number}" in b.hrefs]
        return box

    build = {n: g.find("runtests", f"Build {n}") for n in (0, 1, 2)}
    assert row_time(build[0]) == _clock(t0)
    assert row_time(change_box(c1)) == _clock(t0 + 5.25)
    assert row_time(build[1]) == _clock(t0 + 6.5)
    assert row_time(change_box(c2)) == row_time(build[2]) == _clock(t0 + 30.2)
    # top to bottom, newest first, and the change is beside neither build 0 nor build 1
    assert build[2].row < build[1].row < change_box(c1).row < build[0].row
    bottoms = {b.row + b.rowspan - 1 for b in (build[0], build[1])}
    assert change_box(c1).row not in bottoms
    assert change_box(c2).row == build[2].row + build[2].rowspan - 1
    # four rows, four times: build 2 with its change, build 1, change 1, build 0
    assert [t.text.splitlines()[-1] for t in times] == [
        _clock(t0 + 30.2), _clock(t0 + 6.5), _clock(t0 + 5.25), _clock(t0)]


def test_last_build_and_current_activity_rows(web, history):
    html = page(web, "/waterfall")
    last = re.search(r'<tr class="LastBuild">(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r'<td class="(LastBuild[^"]*)">(.*?)</td>', last, re.S)
    assert len(cells) == len(COLUMNS) - 1
    assert '<td colspan="2" class="Project">last build</td>' in last
    runtests = next(c for c in cells if ">runtests<" in c[1])
    assert runtests[0] == "LastBuild box failure" and "builds/1" in runtests[1]
    docs = next(c for c in cells if ">docs<" in c[1])
    assert docs[0] == "LastBuild box success"
    pkg9 = next(c for c in cells if ">pkg9<" in c[1])
    assert pkg9[0] == "LastBuild box" and pkg9[1].endswith("none")
    act = re.search(r'<tr class="Activity">(.*?)</tr>', html, re.S).group(1)
    states = re.findall(r'<td class="Activity box (\w+)">', act)
    assert states == ["offline", "idle", "idle", "building", "idle"]


def test_builder_show_and_category_select_columns(web, history):
    assert grid_of(page(web, "/waterfall?builder=runtests&show=docs")).header[1:] == \
        ["changes", "docs", "runtests"]
    assert grid_of(page(web, "/waterfall?category=core")).header[1:] == \
        ["changes", "pkg10", "runtests"]
    # category selects builders only: the changes column keeps its changes
    assert grid_of(page(web, "/waterfall?category=core")).column("changes")
    html = page(web, "/waterfall?builder=nosuch", status=404)
    assert "nosuch" in html


def test_branch_filter_and_its_implicit_day(web, history, wmaster):
    old = change(wmaster, time.time() - 3 * 86400, author="olde <o@example.org>",
                 comments="ancient", branch="feature")
    g = grid_of(page(web, "/waterfall?branch=feature"))
    assert [t.splitlines()[0] for t in g.texts("runtests") if "Build" in t] == ["Build 1"]
    assert not [t for t in g.texts("docs") if "Build" in t]
    authors = " ".join(g.texts("changes"))
    assert "evil" in authors and "alice" not in authors and "olde" not in authors
    # an explicit bound replaces the implicit 24 hours
    g = grid_of(page(web, "/waterfall?branch=feature&first_time=0&num_events=50"))
    assert any(f"./changes/{old}" in b.hrefs for b in g.column("changes"))
    # trunk also means the default branch
    g = grid_of(page(web, "/waterfall?branch=trunk"))
    assert [t.splitlines()[0] for t in g.texts("runtests") if "Build" in t] == ["Build 0"]


def test_committer_and_project_filters(web, history):
    g = grid_of(page(web, "/waterfall?committer=alice+%3Calice%40example.org%3E"))
    assert [t.splitlines()[0] for t in g.texts("runtests") if "Build" in t] == ["Build 0"]
    assert [t.splitlines()[0] for t in g.texts("docs") if "Build" in t] == ["Build 0"]
    assert "evil" not in " ".join(g.texts("changes"))
    g = grid_of(page(web, "/waterfall?project=frob"))
    assert [t.splitlines()[0] for t in g.texts("runtests") if "Build" in t] == ["Build 0"]
    assert not [t for t in g.texts("pkg10") if "Build" in t]
    g = grid_of(page(web, "/waterfall?project=nothing"))
    assert not [t for t in g.texts("runtests") if "Build" in t]


def test_failures_only(web, history):
    g = grid_of(page(web, "/waterfall?failures_only=TRUE"))
    # offline (EVIL), last build failed (runtests), a running build's step failed (pkg10);
    # docs and pkg9 are fine
    assert g.header[1:] == ["changes", EVIL_BUILDER, "pkg10", "runtests"]


def test_show_events(web, history):
    assert not [b for b in grid_of(page(web, "/waterfall")).boxes if b.cls == "Event box"]
    g = grid_of(page(web, "/waterfall?show_events=true"))
    texts = [b.text for b in g.column("runtests") if b.cls == "Event box"]
    assert "slave2\ndisconnected" in texts and "slave1\nconnected" in texts
    # slave2 serves runtests only
    assert all("slave2" not in b.text for b in g.column("docs"))


def test_show_events_actions_reconfig_and_master_shutdown(web, history, wmaster):
    """Pausing a slave shows in its builders' columns, the builders' creation in their own
    column, a clean shutdown of the master in every column — each with who did it."""
    from bbweb.engine import actions, actions_slaves

    with wmaster.db.write() as conn:
        actions_slaves.set_paused(conn, "slave2", True, "Ann <ann@example.org>")
        actions.request_clean_shutdown(conn, "admin")
    assert not [b for b in grid_of(page(web, "/waterfall")).boxes if b.cls == "Event box"]
    g = grid_of(page(web, "/waterfall?show_events=true"))
    runtests = [b.text for b in g.column("runtests") if b.cls == "Event box"]
    docs = [b.text for b in g.column("docs") if b.cls == "Event box"]
    assert "slave2\npaused\nby Ann <ann@example.org>" in runtests
    assert not any("paused" in t for t in docs)  # slave2 does not serve docs
    assert "builder created" in runtests and "builder created" in docs
    for name in COLUMNS[1:]:
        assert "master shutting down\nby admin" in [
            b.text for b in g.column(name) if b.cls == "Event box"], name


def test_next_page_and_last_time(web, history):
    html = page(web, "/waterfall?num_events=3&builder=runtests")
    g = grid_of(html)
    assert len(g.column(g.header[0])) == 3
    link = re.search(r'<a class="next-page" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    args = parse_qs(urlsplit(link).query)
    assert args["builder"] == ["runtests"] and args["num_events"] == ["3"]
    first_rows = {b.text for b in g.column(g.header[0])}
    html2 = page(web, "/" + link.removeprefix("./"))
    g2 = grid_of(html2)
    # older rows only: the bottom row is not repeated
    assert not first_rows & {b.text for b in g2.column(g2.header[0])}
    last_time = float(args["last_time"][0])
    assert last_time < time.time()
    # walking all pages shows every build of runtests exactly once
    seen, url = [], "/waterfall?num_events=3&builder=runtests"
    for _ in range(20):
        html = page(web, url)
        seen += [t.splitlines()[0] for t in grid_of(html).texts("runtests") if "Build" in t]
        m = re.search(r'<a class="next-page" href="\./([^"]+)"', html)
        if not m:
            break
        url = "/" + m.group(1).replace("&amp;", "&")
    assert seen == ["Build 1", "Build 0"]


def test_next_page_starts_just_below_a_whole_second_bottom_row(wmaster, web):
    """Commit times are often whole seconds while other events have fractions. When the
    bottom row's time is a whole second, the next page must still show what happened in
    the second before it (a ``last_time`` one second lower lost those events)."""
    t = float(int(time.time()) - 1000)
    change(wmaster, t + 0.8, author="newer", comments="n", files=["f"])  # the same second
    change(wmaster, t, author="bottom", comments="b", files=["f"])  # the row's earliest
    below = change(wmaster, t - 0.5, author="below", comments="x", files=["f"])
    html = page(web, "/waterfall?num_events=1&builder=docs")
    assert "below" not in " ".join(grid_of(html).texts("changes"))
    link = re.search(r'<a class="next-page" href="\./([^"]+)"', html).group(1)
    g = grid_of(page(web, "/" + link.replace("&amp;", "&")))
    assert any(f"./changes/{below}" in b.hrefs for b in g.column("changes"))
    assert "bottom" not in " ".join(g.texts("changes"))  # and the bottom row not repeated


def test_time_bounds(web, history):
    g = grid_of(page(web, f"/waterfall?first_time={int(T0 + 150)}"))
    assert [t.splitlines()[0] for t in g.texts("runtests") if "Build" in t] == ["Build 1"]
    assert not [t for t in g.texts("docs") if "Build" in t]
    g = grid_of(page(web, f"/waterfall?last_time={int(T0 + 150)}&show_time=60"))
    assert [t.splitlines()[0] for t in g.texts("docs") if "Build" in t] == ["Build 0"]
    assert not [t for t in g.texts("runtests") if "Build" in t]
    g = grid_of(page(web, f"/waterfall?last_time={int(T0 + 150)}"))
    assert [t.splitlines()[0] for t in g.texts("runtests") if "Build" in t] == ["Build 0"]


def test_num_events_is_capped_by_num_events_max(make_master):
    m = make_master(CFG.replace("NUM_EVENTS_MAX", "num_events=2, num_events_max=3,"))
    make_history(m)
    app = m.app()
    try:
        client = app.test_client()
        g = grid_of(page(client, "/waterfall"))
        assert len(g.column(g.header[0])) == 2
        g = grid_of(page(client, "/waterfall?num_events=100"))
        assert len(g.column(g.header[0])) == 3
    finally:
        app.extensions["bbweb"].db.dispose()


def test_reload_and_nobubble(web, history):
    html = page(web, "/waterfall?reload=60&builder=docs")
    assert '<meta http-equiv="refresh" content="60">' in html
    stop = re.search(r'<a class="stop-reload" href="([^"]+)"', html).group(1)
    assert stop == "./waterfall?builder=docs"
    assert 'content="15"' in page(web, "/waterfall?reload=5")
    html = page(web, "/waterfall?reload=none")
    assert "http-equiv" not in html and "stop-reload" not in html
    body = page(web, "/waterfall?nobubble=1").split("<tbody>")[1]
    assert "rowspan" not in body
    assert "rowspan" in page(web, "/waterfall").split("<tbody>")[1]


@pytest.mark.parametrize("path", ["/waterfall", "/grid", "/console", "/builders"])
def test_a_non_ascii_digit_reload_is_no_server_error(web, path):
    """``"²".isdigit()`` is true but ``int("²")`` raises: such a ``reload`` must be a
    page (no reload, or a 400), never a server error."""
    resp = web.get(path + "?reload=%C2%B2")
    assert resp.status_code in (200, 400)
    assert "http-equiv" not in resp.get_data(as_text=True)


@pytest.mark.parametrize("query", ["num_events=abc", "num_events=0", "num_events=-4",
                                   "last_time=x", "first_time=1e5", "show_time=soon",
                                   "show_time=-5", "nobubble=yes", "last_time=" + "9" * 20])
def test_bad_numbers_are_a_400(web, query):
    name = query.split("=")[0]
    html = page(web, f"/waterfall?{query}", status=400)
    assert name in html


def test_no_trailing_slash_and_empty_site(web):
    page(web, "/waterfall/", status=404)
    g = grid_of(page(web, "/waterfall"))
    assert g.header[1:] == COLUMNS and g.boxes == []


def test_hostile_text_is_escaped(web, history):
    html = page(web, "/waterfall?show_events=true")
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    help_html = page(web, "/waterfall/help?branch=%3Cscript%3E&committer=%22%3E%3Cb%3E")
    assert "<script>" not in help_html and '"><b>' not in help_html
    assert page(web, "/waterfall?builder=%3Cscript%3E", status=404).count("<script>") == 0


def test_step_links_texts_and_log_names_are_escaped(web, history, wmaster):
    """A step's URLs (the worker's ``addURL``), text and log names come from the build:
    each is escaped, and a URL with a scheme a browser would run is not a link."""
    steps = schema.steps
    with wmaster.db.write() as conn:
        sid = conn.execute(sa.select(steps.c.id).join(schema.builds)
                           .where(schema.builds.c.number == 0, steps.c.name == "test")
                           .order_by(steps.c.id)).scalars().first()
        conn.execute(sa.update(steps).where(steps.c.id == sid).values(
            text=json.dumps(["test", EVIL]),
            urls=json.dumps({"coverage": "http://cov.example.org/?a=1&b=<2>",
                             EVIL: "javascript:alert(1)"})))
        eb.append_step_log(conn, wmaster.config, sid, EVIL, [("o", "x\n")])
    box = grid_of(page(web, "/waterfall?builder=runtests")).find("runtests", EVIL)
    html = page(web, "/waterfall?builder=runtests")
    assert "<script>" not in html
    assert box.text.splitlines()[:2] == ["test", EVIL]
    assert "http://cov.example.org/?a=1&b=<2>" in box.hrefs
    assert "javascript:alert(1)" not in html
    log_link = "./builders/runtests/builds/0/steps/test/logs/" + quote(EVIL, safe="")
    assert log_link in box.hrefs


def test_help_form_is_prefilled(web):
    html = page(web, "/waterfall/help?builder=docs&show=pkg9&branch=feature&committer=bob"
                     "&project=frob&show_events=true&failures_only=true&reload=33"
                     "&category=core&num_events=7")
    assert '<form method="get" action="../waterfall"' in html
    assert re.search(r'name="builder" value="docs" checked', html)
    assert re.search(r'name="builder" value="pkg9" checked', html)
    assert re.search(r'name="builder" value="runtests">', html)
    assert 'name="branch" value="feature"' in html
    assert 'name="committer" value="bob"' in html and 'name="project" value="frob"' in html
    assert re.search(r'name="show_events" value="true" checked', html)
    assert re.search(r'name="failures_only" value="true" checked', html)
    assert re.search(r'name="reload" value="33" checked> 33 seconds', html)
    assert re.search(r'name="reload" value="none">', html)
    assert 'name="num_events" size="6" value="7"' in html
    # categories: each once, no None
    assert re.findall(r'name="category" value="([^"]*)"', html) == ["core", "doc"]
    assert re.search(r'name="category" value="core" checked', html)
    assert '<input type="submit" value="View Waterfall">' in html
    html = page(web, "/waterfall/help")
    assert re.search(r'name="reload" value="none" checked', html)
    # the waterfall links to its help with the current arguments
    assert 'href="./waterfall/help?builder=docs"' in page(web, "/waterfall?builder=docs")


def _builds(master: Any, count: int, t: float) -> float:
    """``count`` forced builds on each of runtests and docs, a minute apart."""
    for _ in range(count):
        for name in ("runtests", "docs"):
            force(master, name, reason="more", owner="x")
            claimed = claim(master, "slave1", t)
            run(master, claimed.buildid, {}, t + 1)
            t += 60
    return t


def test_statements_do_not_grow_with_history(wmaster, wapp, web):
    with wmaster.db.write() as conn:
        sync_builders(conn, wmaster.config)
    t = _builds(wmaster, 3, T0)
    url = "/waterfall?num_events=4&builder=runtests&builder=docs"
    page(web, url)
    with counting(wapp) as small:
        g1 = grid_of(page(web, url))
    _builds(wmaster, 27, t)
    page(web, url)
    with counting(wapp) as big:
        g2 = grid_of(page(web, url))
    assert len(g1.column(g1.header[0])) == len(g2.column(g2.header[0])) == 4
    assert len(big) == len(small), (small, big)
    # the page's builds are the newest ones
    assert "Build 29" in " ".join(g2.texts("docs"))
