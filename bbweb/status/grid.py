"""The grid and the transposed grid: each builder's newest builds, lined up
by the sources they built.

A page costs the same handful of queries whatever the history and however many builders
it shows:

* builder rows and their state (running builds, pending-request counts in one grouped
  query, connected slaves) through :func:`bbweb.status.queries.builder_summaries`, and
  ``waiting`` for idle builders with an upcoming scheduled build
  (:mod:`bbweb.status.upcoming`, one query only when timed schedulers feed them);
* the newest ``width`` builds of every builder in **one** query, an explicit
  ``(builderid, number)`` index range per builder (build numbers are contiguous, so
  ``number >= next_number - width`` is exactly the newest ``width`` started builds);
* the source stamps of exactly those builds, with each build's ``got_revision``, in
  **one** query (builds → buildrequests → buildset_sourcestamps → sourcestamps, and
  build_properties for ``got_revision``).

With a ``branch=`` filter the branch test is a join in that query, over each builder's
newest ``4 × width`` builds (at least 20); builders with fewer matches than ``width`` are searched
again, in one more query, over their newest :data:`SEARCH` builds (0.8 walked the whole
history). The page still shows at most ``width`` matching builds per builder.

Everything after the queries (stamp keys, column choice, placing builds in cells) is
plain Python over at most ``width`` builds per builder: :func:`layout`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db import schema
from bbweb.db.schema import buildrequests, builds, sourcestamps
from bbweb.mastercfg.master import MasterConfig
from bbweb.status import batching, queries, upcoming
from bbweb.status.records import BuilderInfo, BuilderSummary

DEFAULT_WIDTH = 5
MAX_WIDTH = 50  # more columns than this is not a grid anyone reads; bounds the queries
SEARCH = 200  # with a branch filter: newest builds of each builder searched for matches

# ``(branch, revision, patch, codebase, project)`` per source stamp; ``patch`` is None, or
# the stamp's id when it carries a patch (every try job is its own source).
StampKey = tuple[tuple[str | None, str | None, int | None, str, str], ...]


@dataclass(frozen=True)
class StampLine:
    """One source stamp of a column (a line of its header cell)."""

    branch: str | None
    revision: str | None  # the build's got_revision for this codebase when known
    patch_id: int | None  # the stamp's id when it carries a patch
    codebase: str
    project: str
    repository: str

    @property
    def patched(self) -> bool:
        return self.patch_id is not None


@dataclass
class Stamp:
    """A column of the grid (a row of the transposed grid): one set of sources."""

    key: StampKey
    lines: list[StampLine]
    first_started: float  # earliest start among the shown builds of these sources


@dataclass
class GridBuild:
    """A build as a grid cell shows it."""

    id: int
    builder: str
    number: int
    started_at: float
    finished_at: float | None
    results: int | None
    text: list[str]  # shared between builds that say the same: never modified
    stamps: list[StampLine] = field(default_factory=list)

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None

    @property
    def lines(self) -> list[str]:
        """The cell's text lines: "building" while running; a finished build's text with
        exactly ``build successful`` said as "OK", no text as "(no information)"."""
        if not self.is_finished:
            return ["building"]
        if self.text == ["build", "successful"]:
            return ["OK"]
        return self.text or ["(no information)"]


@dataclass
class GridRow:
    """A builder: its state and, per stamp, the build shown (None: a blank cell)."""

    name: str
    state: str  # "idle" | "building" | "offline"
    pending: int
    builds: list[GridBuild | None]


@dataclass
class Grid:
    stamps: list[Stamp]
    rows: list[GridRow]

    def stamp_builds(self, index: int) -> list[GridBuild | None]:
        """The builds of stamp ``index``, one per builder (a row of the transposed grid)."""
        return [row.builds[index] for row in self.rows]


# -- reading ------------------------------------------------------------------------------------

def _got_revision(value: str | None, codebase: str) -> str | None:
    """The revision a build reports for ``codebase`` from its JSON ``got_revision``
    property: a plain value (one codebase) or a codebase → revision mapping."""
    if value is None:
        return None
    if value[:1] == '"' and value[-1:] == '"' and "\\" not in value and len(value) > 1:
        got: Any = value[1:-1]  # the usual plain string, without the JSON decoder
    else:
        got = queries.decode_json(value, None, "a got_revision property")
    if isinstance(got, dict):
        got = got.get(codebase)
    if got is None or got == "" or isinstance(got, bool | dict | list):
        return None
    return str(got)


def _newest(builder_list: Sequence[BuilderInfo], window: int
            ) -> list[sa.ColumnElement[bool]]:
    """Each builder's newest ``window`` build numbers: one explicit index range per
    builder (a join on builders.next_number would make PostgreSQL read the whole
    table), ORed together per :data:`~bbweb.status.batching.GROUP` builders."""
    return batching.number_windows((b.id, b.next_number - window) for b in builder_list)


_BUILD_COLUMNS = (builds.c.id, builds.c.builderid, builds.c.number, builds.c.started_at,
                  builds.c.finished_at, builds.c.results, builds.c.text)


def _on_branches(newest: sa.ColumnElement[bool], count: int, branches: set[str | None]
                 ) -> sa.Select[Any]:
    """The newest ``count`` builds of each builder, among those ``newest`` selects, that
    built one of ``branches``. The branch test is a join (each build's request, buildset
    and stamps looked up by primary key); the newest matches per builder are picked in
    SQL, so only the rows shown come back."""
    bss = schema.buildset_sourcestamps
    wanted = [b for b in branches if b is not None]
    test: sa.ColumnElement[bool] = sourcestamps.c.branch.in_(wanted) if wanted else sa.false()
    if None in branches:
        test = sa.or_(test, sourcestamps.c.branch.is_(None))
    matching = (sa.select(builds.c.id, builds.c.builderid, builds.c.number)
                .join(buildrequests, buildrequests.c.id == builds.c.buildrequestid)
                .join(bss, bss.c.buildsetid == buildrequests.c.buildsetid)
                .join(sourcestamps, sourcestamps.c.id == bss.c.sourcestampid)
                .where(newest, test)
                .distinct().subquery("matching"))
    ranked = sa.select(
        matching.c.id,
        sa.func.row_number().over(partition_by=matching.c.builderid,
                                  order_by=matching.c.number.desc()).label("rank"),
    ).subquery("ranked")
    return (sa.select(*_BUILD_COLUMNS).join(ranked, ranked.c.id == builds.c.id)
            .where(ranked.c.rank <= count))


def _read_builds(conn: Connection, newest: list[sa.ColumnElement[bool]],
                 query: Callable[[sa.ColumnElement[bool]], sa.Select[Any]], names: dict[int, str]
                 ) -> dict[int, list[GridBuild]]:
    """builderid -> its builds that ``query(t1 OR t2 OR …)`` returns, over the terms of
    ``newest`` (:func:`_newest`), newest first."""
    out: dict[int, list[GridBuild]] = {}
    texts: dict[str, list[str]] = {}  # most builds say one of a few things: decode once
    for r in batching.rows_matching_any(
            conn, newest,
            lambda cond: query(cond).order_by(builds.c.builderid, builds.c.number.desc())):
        text = texts.get(r.text)
        if text is None:
            text = texts[r.text] = _text_list(r.text)
        out.setdefault(r.builderid, []).append(GridBuild(
            id=r.id, builder=names[r.builderid], number=r.number, started_at=r.started_at,
            finished_at=r.finished_at, results=r.results, text=text))
    return out


def _text_list(raw: str | None) -> list[str]:
    text = queries.decode_json(raw, [], "a build's text")
    return [str(t) for t in text] if isinstance(text, list) else [str(text)]


def recent_builds(conn: Connection, builder_list: Iterable[BuilderInfo], count: int,
                  branches: set[str | None] | None = None) -> dict[int, list[GridBuild]]:
    """builderid -> its newest ``count`` started builds (running ones included), newest
    first, that built one of ``branches`` (any branch when None).

    Unfiltered: one query reading exactly ``count`` builds per builder. With branches:
    first the newest ``4 × count`` builds of every builder are searched (one query, enough
    when the branch is busy); the builders still short of ``count`` matches are searched
    again over their newest :data:`SEARCH` builds (a second query, only then). Each
    query is one statement per :data:`~bbweb.status.batching.GROUP` builders."""
    blist = [b for b in builder_list if b.id >= 0 and b.next_number > 0]
    if count <= 0 or not blist:
        return {}
    names = {b.id: b.name for b in blist}
    if not branches:
        return _read_builds(conn, _newest(blist, count), sa.select(*_BUILD_COLUMNS).where,
                            names)
    first = min(max(4 * count, 20), SEARCH)

    def matching(newest: sa.ColumnElement[bool]) -> sa.Select[Any]:
        return _on_branches(newest, count, branches)

    found = _read_builds(conn, _newest(blist, first), matching, names)
    short = [b for b in blist if len(found.get(b.id, [])) < count and b.next_number > first]
    if short:
        found.update(_read_builds(conn, _newest(short, max(SEARCH, count)), matching, names))
    return found


def load_stamps(conn: Connection, found: Iterable[GridBuild]) -> None:
    """Fill ``stamps`` of the given builds, revisions replaced by each build's
    ``got_revision``: one query for all of them, patch bodies left in the database."""
    by_id = {b.id: b for b in found}
    if not by_id:
        return
    bss = schema.buildset_sourcestamps
    bp = schema.build_properties
    rows = conn.execute(
        sa.select(builds.c.id.label("buildid"), sourcestamps.c.id, sourcestamps.c.branch,
                  sourcestamps.c.revision, sourcestamps.c.repository, sourcestamps.c.project,
                  sourcestamps.c.codebase,
                  sourcestamps.c.patch_body.isnot(None).label("patched"),
                  bp.c.value.label("got_revision"))
        .join(buildrequests, buildrequests.c.id == builds.c.buildrequestid)
        .join(bss, bss.c.buildsetid == buildrequests.c.buildsetid)
        .join(sourcestamps, sourcestamps.c.id == bss.c.sourcestampid)
        .outerjoin(bp, sa.and_(bp.c.buildid == builds.c.id, bp.c.name == "got_revision"))
        .where(builds.c.id.in_(sorted(by_id)))
        .order_by(builds.c.id, sourcestamps.c.codebase, sourcestamps.c.id))
    for r in rows:
        by_id[r.buildid].stamps.append(StampLine(
            branch=r.branch,
            revision=_got_revision(r.got_revision, r.codebase or "") or r.revision or None,
            patch_id=r.id if r.patched else None, codebase=r.codebase or "",
            project=r.project or "", repository=r.repository or ""))


def stamp_key(build: GridBuild) -> StampKey:
    """What makes two builds "the same sources": per stamp, branch, revision (the
    got_revision when known), patch, codebase and project."""
    return tuple((s.branch, s.revision, s.patch_id, s.codebase, s.project)
                 for s in build.stamps)


# -- arranging ----------------------------------------------------------------------------------

def layout(summaries: Sequence[BuilderSummary], per_builder: dict[str, list[GridBuild]],
           width: int) -> Grid:
    """Columns and cells from each builder's newest builds (newest first).

    Columns are the distinct stamp keys, ordered by the earliest start of a build of
    them, the newest ``width`` kept (oldest first). A builder's build goes in the column
    of its key; when it built the same sources twice the newest build is shown."""
    first: dict[StampKey, tuple[float, int]] = {}
    lines: dict[StampKey, list[StampLine]] = {}
    key_of: dict[int, StampKey] = {}
    for found in per_builder.values():
        for b in found:
            key = key_of[b.id] = stamp_key(b)
            seen = (b.started_at, b.id)
            if key not in first or seen < first[key]:
                first[key] = seen
                lines[key] = b.stamps
    keys = sorted(first, key=lambda k: first[k])[-width:] if width > 0 else []
    column = {k: i for i, k in enumerate(keys)}
    rows = []
    for s in summaries:
        cells: list[GridBuild | None] = [None] * len(keys)
        for b in per_builder.get(s.name, []):  # newest first: the first to claim wins
            i = column.get(key_of[b.id])
            if i is not None and cells[i] is None:
                cells[i] = b
        rows.append(GridRow(name=s.name, state=s.state, pending=s.pending, builds=cells))
    return Grid(stamps=[Stamp(key=k, lines=lines[k], first_started=first[k][0]) for k in keys],
                rows=rows)


def grid(conn: Connection, cfg: MasterConfig, rows: dict[str, BuilderInfo],
         names: Sequence[str], width: int, branches: set[str | None] | None = None) -> Grid:
    """The grid of the builders ``names`` (in that order; ``rows`` are their database
    rows), ``width`` stamps wide. Five queries whatever the history and the number of
    builders (six with a branch filter that few recent builds match), plus one when a
    Nightly or Periodic scheduler feeds them (their state is ``waiting`` when idle)."""
    summaries = upcoming.with_waiting(queries.builder_summaries(conn, cfg, names, rows=rows),
                                      upcoming.upcoming_builds(conn, cfg, names))
    present = [rows[n] for n in names if n in rows]
    found = recent_builds(conn, present, width, branches)
    load_stamps(conn, [b for lst in found.values() for b in lst])
    by_name = {rows[n].name: found.get(rows[n].id, []) for n in names if n in rows}
    return layout([summaries[n] for n in names if n in summaries], by_name, width)
