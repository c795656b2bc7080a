"""What the console shows: the newest changes, and for each change the build
that contains it on every builder, coloured by what that build did.

The page starts from the changes, never from the builders' histories:

1. the ``revs`` newest changes that match the filters (``changes`` primary key, walked
   backwards);
2. every build request (and build) whose buildset contains one of them, in one join
   ``sourcestamp_changes → buildset_sourcestamps → buildrequests → builds``, each step of it
   an index lookup;
3. buildsets without any change (forced or timed builds) submitted since the oldest shown
   change, with their requests and builds, so they get rows of their own;
4. for a build that failed, the build just before it on its builder (failed again?), one
   query by ``(builderid, number)`` pairs;
5. the failed steps (with their logs) of builds that introduced a failure;
6. the builder status row as on ``/builders``: running builds, connected slaves, the newest
   finished build of each builder (a ``(builderid, number)`` window).

So the statement count is fixed (about a dozen) and the rows read are bounded by
``revs`` × builders, whatever the history.

"Contains the change" is decided by the database links (the build's buildset lists a source
stamp that lists the change), not by comparing revision strings: two changes with the same
revision in different repositories or codebases never share a colour.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import (
    buildrequests,
    builds,
    buildset_sourcestamps,
    buildsets,
    changes,
    logs,
    sourcestamp_changes,
    sourcestamps,
    steps,
)
from bbweb.mastercfg.master import MasterConfig
from bbweb.mastercfg.schedulers import ForceScheduler
from bbweb.status import batching, estimates, queries
from bbweb.status.records import BuilderInfo, ChangeInfo
from bbweb.values.results import FAILURE, SUCCESS, WARNINGS

DEFAULT_REVS = 40
MAX_REVS = 200  # a larger ``revs`` is lowered to this: the page must stay a page
# Buildsets without changes are looked for among the newest FORCED_SCAN × revs buildsets
# only, so a site that never forces a build does not check its whole history for one.
FORCED_SCAN = 10

# cell classes
PASSED, WARNED, FAILED, FAILED_AGAIN = "success", "warnings", "failure", "failure-again"
RUNNING, BROKEN, NOT_STARTED, NOT_IN_BUILDER = "running", "exception", "notstarted", \
    "notinbuilder"
OFFLINE = "offline"


@dataclass(frozen=True)
class ConsoleFilter:
    """Which changes are shown. None (or no authors) means any."""

    branch: str | None = None
    repository: str | None = None
    project: str | None = None
    codebase: str | None = None
    authors: tuple[str, ...] = ()


@dataclass(slots=True)
class ConsoleBuild:
    id: int
    builderid: int
    number: int
    buildsetid: int
    started_at: float
    finished_at: float | None
    results: int | None
    text: list[str]

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None


@dataclass(slots=True)
class Cell:
    """One box: ``css`` is the class (success, failure-again, notinbuilder…); ``build`` the
    newest build of the row's change on this builder, if any."""

    css: str
    build: ConsoleBuild | None = None
    eta: float | None = None  # seconds left, running builds with an estimate


@dataclass
class FailedStep:
    """A failed step of a build that introduced a failure, listed under its row."""

    builder: str
    number: int
    step: str
    text: list[str]
    logs: list[str]


@dataclass
class Stamp:
    codebase: str
    branch: str | None
    revision: str | None
    repository: str
    project: str


@dataclass
class ChangelessBuildset:
    """A buildset without any change: a forced build (``forced``) or one a timed scheduler
    started. It gets a row of its own."""

    id: int
    reason: str
    submitted_at: float
    scheduler: str | None
    forced: bool
    stamps: list[Stamp] = field(default_factory=list)


@dataclass
class ConsoleRow:
    """A change's row, or a changeless buildset's row (exactly one of the two is set)."""

    change: ChangeInfo | None
    buildset: ChangelessBuildset | None
    cells: dict[str, Cell] = field(default_factory=dict)
    failures: list[FailedStep] = field(default_factory=list)


@dataclass
class BuilderStatus:
    """A builder's box in the status row: ``offline``, else the class of its newest
    finished build, else ``notstarted``."""

    name: str
    category: str
    css: str
    build: ConsoleBuild | None = None


@dataclass
class ConsoleData:
    builders: list[BuilderStatus]
    rows: list[ConsoleRow]
    more: bool = False  # older changes exist beyond the rows shown


def display_category(category: str | None) -> str:
    """The column group of a builder: its category up to the first ``|``, or
    ``default``."""
    return (category or "default").split("|", 1)[0]


def result_css(results: int | None) -> str:
    """A finished build's cell class by the spec's table (failure-again is decided by the
    caller, who knows the previous build)."""
    if results is None:
        return RUNNING
    return {SUCCESS: PASSED, WARNINGS: WARNED, FAILURE: FAILED}.get(results, BROKEN)


# -- queries ------------------------------------------------------------------------------------

def _json_list(text: str | None) -> list[str]:
    value = queries.decode_json(text, [], "a build's or step's text")
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _author_clause(names: Iterable[str]) -> Any:
    """``name=`` matches the whole author (0.8), the name of ``Name <mail>`` or the mail
    address in it."""
    terms = []
    for name in names:
        pattern = _like_escape(name)
        terms.extend([changes.c.author == name,
                      changes.c.author.like(pattern + " <%", escape="\\"),
                      changes.c.author.like("%<" + pattern + ">", escape="\\")])
    return sa.or_(*terms)


def newest_changes(conn: Connection, revs: int, filters: ConsoleFilter) -> list[ChangeInfo]:
    """The ``revs`` newest changes (by arrival, i.e. change id) matching ``filters``,
    newest first. One query; files and properties are not read."""
    query = sa.select(changes)
    for column, value in ((changes.c.branch, filters.branch),
                          (changes.c.repository, filters.repository),
                          (changes.c.project, filters.project),
                          (changes.c.codebase, filters.codebase)):
        if value is not None:
            query = query.where(column == value)
    if filters.authors:
        query = query.where(_author_clause(filters.authors))
    rows = conn.execute(query.order_by(changes.c.changeid.desc()).limit(revs))
    return [ChangeInfo(number=r.changeid, author=r.author, comments=r.comments,
                       branch=r.branch, revision=r.revision, revlink=r.revlink,
                       when=r.when_timestamp, category=r.category, repository=r.repository,
                       codebase=r.codebase, project=r.project, src=r.src,
                       is_dir=bool(r.is_dir)) for r in rows]


@dataclass(slots=True)
class _Request:
    key: int  # the change id or the buildset id the request was found for
    builderid: int
    buildsetid: int
    build: ConsoleBuild | None


# in this order after the key column (rows are unpacked as tuples: this is the hot loop)
_BUILD_COLUMNS = (buildrequests.c.builderid, buildrequests.c.buildsetid,
                  builds.c.id.label("build_id"), builds.c.number, builds.c.started_at,
                  builds.c.finished_at, builds.c.results, builds.c.text)


def _requests(rows: Iterable[Any]) -> list[_Request]:
    out = []
    texts: dict[str, list[str]] = {}  # most builds say the same few things
    for key, builderid, buildsetid, build_id, number, started, finished, results, raw in rows:
        build = None
        if build_id is not None:
            text = texts.get(raw)
            if text is None:
                text = texts[raw] = _json_list(raw)
            build = ConsoleBuild(build_id, builderid, number, buildsetid, started, finished,
                                 results, text)
        out.append(_Request(key, builderid, buildsetid, build))
    return out


def requests_of_changes(conn: Connection, changeids: Sequence[int]) -> list[_Request]:
    """Every build request whose buildset contains one of the changes, with its builds
    (several when retried or rebuilt). One query of index lookups from the changes."""
    if not changeids:
        return []
    sc, bss = sourcestamp_changes, buildset_sourcestamps
    # builders are filtered by the caller: given ``builderid IN`` too, a planner may walk
    # the builders' request index instead of starting from the changes
    query = (sa.select(sc.c.changeid.label("key"), *_BUILD_COLUMNS)
             .select_from(sc.join(bss, bss.c.sourcestampid == sc.c.sourcestampid)
                          .join(buildrequests, buildrequests.c.buildsetid == bss.c.buildsetid)
                          .outerjoin(builds, builds.c.buildrequestid == buildrequests.c.id))
             .where(sc.c.changeid.in_(sorted(set(changeids)))))
    return _requests(conn.execute(query))


def requests_of_buildsets(conn: Connection, buildsetids: Sequence[int]) -> list[_Request]:
    """The build requests (with builds) of the given buildsets. One query."""
    if not buildsetids:
        return []
    query = (sa.select(buildrequests.c.buildsetid.label("key"), *_BUILD_COLUMNS)
             .select_from(buildrequests.outerjoin(
                 builds, builds.c.buildrequestid == buildrequests.c.id))
             .where(buildrequests.c.buildsetid.in_(sorted(set(buildsetids)))))
    return _requests(conn.execute(query))


def changeless_buildsets(conn: Connection, cfg: MasterConfig, revs: int,
                         filters: ConsoleFilter, after: int) -> list[ChangelessBuildset]:
    """The newest ``revs`` buildsets with id above ``after`` none of whose source stamps
    lists a change, newest first; with a branch/repository/project/codebase filter, only
    those with a source stamp that matches it. Only the newest ``FORCED_SCAN × revs``
    buildsets are looked at. One query."""
    bss, sc = buildset_sourcestamps, sourcestamp_changes
    has_change = (sa.exists().where(bss.c.buildsetid == buildsets.c.id,
                                    sc.c.sourcestampid == bss.c.sourcestampid))
    newest = sa.select(sa.func.max(buildsets.c.id)).scalar_subquery()
    query = (sa.select(buildsets.c.id, buildsets.c.reason, buildsets.c.submitted_at,
                       buildsets.c.scheduler)
             .where(buildsets.c.id > after,
                    buildsets.c.id > newest - FORCED_SCAN * revs,
                    ~has_change))
    wanted = [(sourcestamps.c.branch, filters.branch),
              (sourcestamps.c.repository, filters.repository),
              (sourcestamps.c.project, filters.project),
              (sourcestamps.c.codebase, filters.codebase)]
    conditions = [column == value for column, value in wanted if value is not None]
    if conditions:
        query = query.where(sa.exists().where(bss.c.buildsetid == buildsets.c.id,
                                              sourcestamps.c.id == bss.c.sourcestampid,
                                              *conditions))
    out = []
    for r in conn.execute(query.order_by(buildsets.c.id.desc()).limit(revs)):
        sched = cfg.schedulers.get(r.scheduler) if r.scheduler else None
        out.append(ChangelessBuildset(
            id=r.id, reason=r.reason or "", submitted_at=r.submitted_at,
            scheduler=r.scheduler, forced=sched is None or isinstance(sched, ForceScheduler)))
    return out


def buildset_stamps(conn: Connection, buildsetids: Iterable[int]
                    ) -> dict[int, list[tuple[Stamp, bool]]]:
    """buildsetid -> its source stamps, each with whether it lists a change. One query."""
    ids = sorted(set(buildsetids))
    if not ids:
        return {}
    bss, sc = buildset_sourcestamps, sourcestamp_changes
    has_change = sa.exists().where(sc.c.sourcestampid == sourcestamps.c.id)
    rows = conn.execute(
        sa.select(bss.c.buildsetid, sourcestamps, has_change.label("has_change"))
        .join(sourcestamps, sourcestamps.c.id == bss.c.sourcestampid)
        .where(bss.c.buildsetid.in_(ids))
        .order_by(bss.c.buildsetid, sourcestamps.c.codebase, sourcestamps.c.id))
    out: dict[int, list[tuple[Stamp, bool]]] = {}
    for r in rows:
        out.setdefault(r.buildsetid, []).append(
            (Stamp(codebase=r.codebase, branch=r.branch, revision=r.revision,
                   repository=r.repository, project=r.project), bool(r.has_change)))
    return out


def newest_finished(conn: Connection, builder_list: Iterable[BuilderInfo],
                    running: dict[int, list[int]]) -> dict[int, ConsoleBuild]:
    """builderid -> its newest finished build. Build numbers are contiguous, so it is
    among the newest ``running + 1`` numbers: one query over those windows (per
    :data:`~bbweb.status.batching.GROUP` builders)."""
    blist = [b for b in builder_list if b.id >= 0 and b.next_number > 0]
    ranges = batching.number_windows(
        (b.id, b.next_number - 1 - len(running.get(b.id, ()))) for b in blist)
    if not ranges:
        return {}
    query = (sa.select(builds.c.id.label("key"), buildrequests.c.builderid,
                       buildrequests.c.buildsetid, builds.c.id.label("build_id"),
                       builds.c.number, builds.c.started_at, builds.c.finished_at,
                       builds.c.results, builds.c.text)
             .join(buildrequests, buildrequests.c.id == builds.c.buildrequestid)
             .order_by(builds.c.builderid, builds.c.number.desc()))
    rows = batching.rows_matching_any(conn, ranges, query.where)
    out: dict[int, ConsoleBuild] = {}
    for req in _requests(r for r in rows if r.finished_at is not None):
        if req.build is not None and req.builderid not in out:
            out[req.builderid] = req.build
    return out


def build_results(conn: Connection, pairs: Iterable[tuple[int, int]]
                  ) -> dict[tuple[int, int], int | None]:
    """(builderid, number) -> result (None while running) of the given builds. One
    query (per :data:`~bbweb.status.batching.GROUP` builders), one ``(builderid, number)``
    index lookup per pair."""
    by_builder: dict[int, set[int]] = {}
    for bid, number in pairs:
        if number >= 0:
            by_builder.setdefault(bid, set()).add(number)
    if not by_builder:
        return {}
    terms = [sa.and_(builds.c.builderid == bid, builds.c.number.in_(sorted(nums)))
             for bid, nums in sorted(by_builder.items())]
    query = sa.select(builds.c.builderid, builds.c.number, builds.c.results)
    return {(r.builderid, r.number): r.results
            for r in batching.rows_matching_any(conn, terms, query.where)}


def failed_steps(conn: Connection, buildids: Iterable[int]
                 ) -> dict[int, list[tuple[str, list[str], list[str]]]]:
    """buildid -> ``(step name, step text, log names)`` of each step that FAILED, in step
    order. One query."""
    ids = sorted(set(buildids))
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(steps.c.buildid, steps.c.id, steps.c.name, steps.c.text,
                  logs.c.name.label("log_name"))
        .select_from(steps.outerjoin(logs, logs.c.stepid == steps.c.id))
        .where(steps.c.buildid.in_(ids), steps.c.results == FAILURE)
        .order_by(steps.c.buildid, steps.c.number, logs.c.id))
    out: dict[int, list[tuple[str, list[str], list[str]]]] = {}
    seen: dict[int, tuple[str, list[str], list[str]]] = {}
    for r in rows:
        entry = seen.get(r.id)
        if entry is None:
            entry = seen[r.id] = (r.name, _json_list(r.text), [])
            out.setdefault(r.buildid, []).append(entry)
        if r.log_name is not None:
            entry[2].append(r.log_name)
    return out


# -- putting the page together ------------------------------------------------------------------

def _order_rows(change_rows: list[ConsoleRow], other_rows: list[ConsoleRow],
                first_buildset: dict[int, int], by_time: bool) -> list[ConsoleRow]:
    """Newest first. By arrival (default): changes by id, and a changeless buildset just
    above the newest change that was already scheduled when it was submitted (buildset ids
    are handed out in submission order). By time: changes by their ``when``, changeless
    buildsets by submission time."""
    if by_time:
        keyed = [((r.change.when, 1, r.change.number), r) for r in change_rows if r.change]
        keyed += [((r.buildset.submitted_at, 0, r.buildset.id), r)
                  for r in other_rows if r.buildset]
        keyed.sort(key=lambda kr: kr[0], reverse=True)
        return [r for _k, r in keyed]
    pending = sorted(other_rows, key=lambda r: r.buildset.id if r.buildset else 0,
                     reverse=True)
    out: list[ConsoleRow] = []
    for row in sorted(change_rows, key=lambda r: r.change.number if r.change else 0,
                      reverse=True):
        scheduled = first_buildset.get(row.change.number) if row.change else None
        while scheduled is not None and pending and pending[0].buildset \
                and pending[0].buildset.id > scheduled:
            out.append(pending.pop(0))
        out.append(row)
    return out + pending


@dataclass
class _Builders:
    """The console's columns: the builder rows by name and by id, each builder's newest
    finished build, and which of their slaves are connected."""

    infos: dict[str, BuilderInfo]
    by_id: dict[int, BuilderInfo]
    last: dict[int, ConsoleBuild]
    connected: set[str]


@dataclass
class _Rows:
    """The console's rows, newest first, with the build requests behind them."""

    changes: list[ChangeInfo]  # the newest changes that match the filters
    change_reqs: list[_Request]  # their build requests
    shown: list[ConsoleRow]  # at most ``revs`` rows: changes and changeless buildsets
    other_reqs: list[_Request]  # the build requests of the changeless buildsets shown
    stamps: dict[int, list[tuple[Stamp, bool]]]  # those buildsets' and newest builds'


def console_data(conn: Connection, cfg: MasterConfig, names: Sequence[str], *, revs: int,
                 filters: ConsoleFilter, order_by_time: bool, now: float) -> ConsoleData:
    """Everything the console shows for the builders ``names`` (in column order), in
    phases, each a fixed number of queries whatever the history: the builders and their
    newest builds; the rows (the newest changes and changeless buildsets, ordered); which
    codebases each builder builds; one cell per row and builder; builds that failed
    again; the failed steps of the others; the ETAs of running builds; the builders'
    status line."""
    builders = _console_builders(conn, cfg, names)
    rows = _console_rows(conn, cfg, revs, filters, order_by_time, builders.last)
    codebases = _builder_codebases(builders, rows)
    _fill_cells(rows, names, builders.infos, codebases)
    _mark_failed_again(conn, rows, builders.last)
    _add_failed_steps(conn, rows.shown)
    _add_etas(conn, rows.shown, builders.by_id, now)
    return ConsoleData(builders=_status_line(cfg, names, builders), rows=rows.shown,
                       more=len(rows.changes) >= revs or len(rows.shown) < len(rows.changes))


def _console_builders(conn: Connection, cfg: MasterConfig, names: Sequence[str]) -> _Builders:
    infos = queries.builder_rows(conn, names)
    by_id = {infos[n].id: infos[n] for n in names if n in infos}
    running = queries.current_build_numbers(conn, by_id)
    connected = queries.connected_slave_names(
        conn, {s for n in names for s in cfg.builders[n].slavenames})
    return _Builders(infos, by_id, newest_finished(conn, by_id.values(), running), connected)


def _console_rows(conn: Connection, cfg: MasterConfig, revs: int, filters: ConsoleFilter,
                  order_by_time: bool, last: dict[int, ConsoleBuild]) -> _Rows:
    """The newest ``revs`` rows; the source stamps of the newest builds (``last``) are read
    in the same query as the rows'."""
    change_list = newest_changes(conn, revs, filters)
    change_reqs = requests_of_changes(conn, [c.number for c in change_list])
    first_buildset: dict[int, int] = {}
    for req in change_reqs:
        first_buildset[req.key] = min(req.buildsetid, first_buildset.get(req.key, req.buildsetid))
    others: list[ChangelessBuildset] = []
    if not filters.authors:  # a personalized console shows that person's changes only
        full = len(change_list) >= revs
        after = min((first_buildset[c.number] for c in change_list
                     if c.number in first_buildset), default=0) if full else 0
        others = changeless_buildsets(conn, cfg, revs, filters, after)
    # ``revs`` rows at most: a changeless build's row counts as one. Both lists hold the
    # newest ``revs`` of their kind, so the newest ``revs`` rows of the merge are exact.
    shown = _order_rows([ConsoleRow(change=c, buildset=None) for c in change_list],
                        [ConsoleRow(change=None, buildset=b) for b in others],
                        first_buildset, order_by_time)[:revs]
    others = [r.buildset for r in shown if r.buildset is not None]
    other_reqs = requests_of_buildsets(conn, [b.id for b in others])
    stamps = buildset_stamps(conn, [b.id for b in others] + [b.buildsetid for b in last.values()])
    for bs in others:
        bs.stamps = [s for s, _has in stamps.get(bs.id, [])]
    return _Rows(change_list, change_reqs, shown, other_reqs, stamps)


def _builder_codebases(builders: _Builders, rows: _Rows) -> dict[int, set[str]]:
    """builderid -> the codebases it builds: those of its requests for the shown changes,
    and its newest finished build's unless that one had no change (a forced build says
    nothing)."""
    codebases: dict[int, set[str]] = {bid: set() for bid in builders.by_id}
    codebase_of = {c.number: c.codebase for c in rows.changes}
    for req in rows.change_reqs:
        if req.builderid in codebases:
            codebases[req.builderid].add(codebase_of[req.key])
    for bid, newest in builders.last.items():
        its = rows.stamps.get(newest.buildsetid, [])
        if any(has for _s, has in its):
            codebases[bid].update(s.codebase for s, _has in its)
    return codebases


def _newest_per_builder(reqs: list[_Request]) -> dict[tuple[int, int], ConsoleBuild | None]:
    """(row key, builderid) -> the newest build of the requests (None: requested, not built
    yet)."""
    out: dict[tuple[int, int], ConsoleBuild | None] = {}
    for req in reqs:
        slot = (req.key, req.builderid)
        build, have = req.build, out.get(slot)
        if have is None or (build is not None and build.number > have.number):
            out[slot] = build
    return out


def _fill_cells(rows: _Rows, names: Sequence[str], infos: dict[str, BuilderInfo],
                codebases: dict[int, set[str]]) -> None:
    """One cell per row and builder: its newest build for the row, "not started" when the
    builder builds the row's codebase, else "not in this builder"."""
    of_changes = _newest_per_builder(rows.change_reqs)
    of_buildsets = _newest_per_builder(rows.other_reqs)
    columns = [(name, infos[name].id if name in infos else -1) for name in names]
    for row in rows.shown:
        if row.change is not None:
            key, mine, codebase = row.change.number, of_changes, row.change.codebase
        elif row.buildset is not None:
            key, mine, codebase = row.buildset.id, of_buildsets, None
        else:
            continue
        cells = row.cells
        for name, bid in columns:
            slot = (key, bid)
            if slot in mine:
                build = mine[slot]
                cells[name] = Cell(result_css(build.results), build) if build is not None \
                    else Cell(NOT_STARTED)  # requested, not built yet
            elif codebase is not None and (not codebases.get(bid)
                                           or codebase in codebases[bid]):
                # the builder builds this codebase (or nothing is known about it yet)
                cells[name] = Cell(NOT_STARTED)
            else:
                cells[name] = Cell(NOT_IN_BUILDER)


def _mark_failed_again(conn: Connection, rows: _Rows, last: dict[int, ConsoleBuild]
                       ) -> None:
    """A failed build whose predecessor on the same builder failed too "failed again";
    the results already read are used, the others read in one query."""
    known: dict[tuple[int, int], int | None] = {}
    for req in rows.change_reqs + rows.other_reqs:
        if req.build is not None:
            known[(req.builderid, req.build.number)] = req.build.results
    for done in last.values():
        known[(done.builderid, done.number)] = done.results
    failing = [c.build for row in rows.shown for c in row.cells.values()
               if c.css == FAILED and c.build is not None]
    wanted = {(b.builderid, b.number - 1) for b in failing} - known.keys()
    known.update(build_results(conn, wanted))
    for row in rows.shown:
        for cell in row.cells.values():
            if cell.css == FAILED and cell.build is not None and \
                    known.get((cell.build.builderid, cell.build.number - 1)) == FAILURE:
                cell.css = FAILED_AGAIN


def _add_failed_steps(conn: Connection, shown: list[ConsoleRow]) -> None:
    """Under each row, the failed steps of its new failures (one query)."""
    new_failures = {c.build.id for row in shown for c in row.cells.values()
                    if c.css == FAILED and c.build is not None}
    details = failed_steps(conn, new_failures)
    for row in shown:
        for name, cell in row.cells.items():
            if cell.css == FAILED and cell.build is not None:
                for step, text, log_names in details.get(cell.build.id, []):
                    row.failures.append(FailedStep(name, cell.build.number, step, text,
                                                   log_names))


def _add_etas(conn: Connection, shown: list[ConsoleRow], by_id: dict[int, BuilderInfo],
              now: float) -> None:
    """The ETA of each running build (one query, none when nothing runs)."""
    building = [(c, c.build) for row in shown for c in row.cells.values()
                if c.css == RUNNING and c.build is not None]
    if not building:
        return
    expected = estimates.expected_durations(
        conn, [by_id[bid] for bid in {build.builderid for _c, build in building}])
    for cell, build in building:
        cell.eta = estimates.eta_seconds(expected.get(build.builderid), build.started_at, now)


def _status_line(cfg: MasterConfig, names: Sequence[str], builders: _Builders
                 ) -> list[BuilderStatus]:
    """Each builder's box above the columns: offline, its newest result, or not started."""
    status = []
    for name in names:
        info = builders.infos.get(name)
        build = builders.last.get(info.id) if info else None
        if not any(s in builders.connected for s in cfg.builders[name].slavenames):
            css = OFFLINE
        elif build is not None:
            css = result_css(build.results)
        else:
            css = NOT_STARTED
        status.append(BuilderStatus(name, display_category(cfg.builders[name].category), css,
                                    build))
    return status
