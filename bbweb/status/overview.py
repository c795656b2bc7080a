"""Page-oriented read queries for the builders, recent-builds and buildslaves pages.

Same rule as :mod:`bbweb.status.queries`: what a page reads is bounded by what it shows,
never by how much history exists.

* "The newest builds of these builders" is one query over an explicit
  ``(builderid, number)`` range per builder (``number >= next_number - window``), so each
  builder costs an index range scan of ``window`` rows at most. A branch filter is a
  correlated ``EXISTS`` over the build's source stamps inside that range; with no other
  filter each builder's range is walked newest first and left at its ``count``-th match
  (one ``LIMIT``-ed ``SELECT`` per builder, ``UNION ALL``-ed). Property filters are
  applied to the window in Python after one batched query. A filter can narrow a page
  but never widen the scan beyond ``maxsearch`` builds per builder.
* A slave's recent builds walk the ``(slaveid, finished_at)`` index backwards with a
  ``LIMIT``.
* Build tables need properties (``got_revision``) and sourcestamps with their changes, not
  steps or logs: :func:`load_table_details` reads those for the whole table at once.

The :class:`BuildRow` helpers turn a build into what a build table shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db import schema
from bbweb.db.schema import buildrequests, builds, sourcestamps
from bbweb.status import batching, queries
from bbweb.status.records import BuilderInfo, BuildInfo, Property

# ``branch=trunk`` also selects builds of the default branch (None), as in 0.8.
TRUNK = "trunk"


def _json_value(text: str | None) -> Any:
    return queries.decode_json(text, None, "a build property")


# -- branch and property filters ----------------------------------------------------------------

def branch_filter(values: Iterable[str]) -> set[str | None] | None:
    """The set of branches ``branch=`` arguments select (None: no filter). Empty values are
    ignored; ``trunk`` also matches the default branch (None)."""
    wanted: set[str | None] = {v for v in values if v}
    if not wanted:
        return None
    if TRUNK in wanted:
        wanted.add(None)
    return wanted


def property_text(value: Any) -> str:
    """How a property value compares with a ``property.NAME=VALUE`` filter: its ``str()``
    (0.8 compared ``str(value) == VALUE``)."""
    return str(value)


def matches_properties(props: Iterable[Property], wanted: dict[str, str]) -> bool:
    """True when every ``wanted`` name has a property whose value reads as the wanted text.

    ``props`` are ``(name, value, source)`` triples; only the value is compared (0.8
    compared the whole (value, source) pair for pending requests, which never matched)."""
    if not wanted:
        return True
    have = {name: value for name, value, _source in props}
    return all(name in have and property_text(have[name]) == text
               for name, text in wanted.items())


def build_branches(conn: Connection, buildids: Iterable[int]) -> dict[int, set[str | None]]:
    """buildid -> the branches of the sourcestamps it built. One query."""
    ids = sorted(set(buildids))
    if not ids:
        return {}
    bss = schema.buildset_sourcestamps
    rows = conn.execute(
        sa.select(builds.c.id, sourcestamps.c.branch)
        .join(buildrequests, buildrequests.c.id == builds.c.buildrequestid)
        .join(bss, bss.c.buildsetid == buildrequests.c.buildsetid)
        .join(sourcestamps, sourcestamps.c.id == bss.c.sourcestampid)
        .where(builds.c.id.in_(ids)))
    out: dict[int, set[str | None]] = {i: set() for i in ids}
    for r in rows:
        out[r.id].add(r.branch)
    return out


def build_property_values(conn: Connection, buildids: Iterable[int], names: Iterable[str]
                          ) -> dict[int, list[Property]]:
    """buildid -> its properties among ``names`` (for filtering). One query."""
    ids = sorted(set(buildids))
    wanted = sorted(set(names))
    if not ids or not wanted:
        return {}
    bp = schema.build_properties
    out: dict[int, list[Property]] = {}
    for r in conn.execute(sa.select(bp.c.buildid, bp.c.name, bp.c.value, bp.c.source)
                          .where(bp.c.buildid.in_(ids), bp.c.name.in_(wanted))):
        out.setdefault(r.buildid, []).append((r.name, _json_value(r.value), r.source))
    return out


# -- newest finished builds per builder ---------------------------------------------------------

def running_counts(conn: Connection, builderids: Iterable[int]) -> dict[int, int]:
    """builderid -> how many of its builds are running (one query over running builds)."""
    return {bid: len(nums) for bid, nums in
            queries.current_build_numbers(conn, builderids).items()}


def on_branches(branches: set[str | None]) -> sa.ColumnElement[bool]:
    """A condition on ``builds`` rows: one of the build's source stamps is on one of
    ``branches`` (None: the default branch). A correlated ``EXISTS``, so a build with
    several matching stamps is still one row."""
    bss = schema.buildset_sourcestamps
    named = sorted(b for b in branches if b is not None)
    conds = []
    if named:
        conds.append(sourcestamps.c.branch.in_(named))
    if None in branches:
        conds.append(sourcestamps.c.branch.is_(None))
    return sa.exists(
        sa.select(sa.literal(1))
        .select_from(buildrequests
                     .join(bss, bss.c.buildsetid == buildrequests.c.buildsetid)
                     .join(sourcestamps, sourcestamps.c.id == bss.c.sourcestampid))
        .where(buildrequests.c.id == builds.c.buildrequestid, sa.or_(*conds)))


def _newest_on_branches(conn: Connection, blist: list[BuilderInfo], count: int,
                        search: int, branches: set[str | None]) -> list[Any]:
    """Rows ``(id, builderid, number)`` of each builder's newest ``count`` finished builds
    on ``branches`` among its newest ``search`` builds, newest first per builder.

    One ``SELECT … ORDER BY number DESC LIMIT count`` per builder, glued with ``UNION
    ALL``: each walks its builder's ``(builderid, number)`` index backwards from the newest
    build and stops at the ``count``-th match, so a branch most builds are on costs a few
    rows per builder, and one no build is on at most ``search``."""
    match = on_branches(branches)
    parts = [sa.select(builds.c.id, builds.c.builderid, builds.c.number)
             .where(builds.c.builderid == b.id, builds.c.number >= b.next_number - search,
                    builds.c.finished_at.isnot(None), match)
             .order_by(builds.c.number.desc())
             .limit(count)
             for b in blist]
    rows: list[Any] = []
    for group in batching.groups(parts):  # SQLite: at most 500 parts in a compound SELECT
        chunk = [sa.select(p.subquery()) for p in group]
        stmt = chunk[0] if len(chunk) == 1 else sa.union_all(*chunk)
        rows.extend(conn.execute(stmt).all())
    rows.sort(key=lambda r: (r.builderid, -r.number))
    return rows


def finished_builds(conn: Connection, builder_list: Iterable[BuilderInfo], count: int, *,
                    branches: set[str | None] | None = None,
                    properties: dict[str, str] | None = None,
                    search: int = 200,
                    running: dict[int, int] | None = None) -> dict[int, list[BuildInfo]]:
    """builderid -> its newest ``count`` finished builds (by number, newest first) that
    match ``branches`` and ``properties``.

    Without filters the window scanned per builder is exactly ``count`` plus the builder's
    running builds (``running``: builderid -> count; read here when not given), which
    always holds the newest ``count`` finished builds. With a filter, the newest
    ``search`` builds of each builder are looked at, no more (0.8's ``maxsearch``).

    A branch filter alone is answered in SQL, each builder's walk stopping at its
    ``count``-th match (:func:`_newest_on_branches`); property filters are applied in
    Python to the window (branch already filtered in SQL). Queries: one for the builds
    (per :data:`~bbweb.status.batching.GROUP` builders), one for property values, one for
    the chosen rows, whatever the history. Build details are not loaded (see
    :func:`load_table_details`)."""
    blist = [b for b in builder_list if b.id >= 0 and b.next_number > 0]
    if count <= 0 or not blist:
        return {}
    filtered = bool(branches) or bool(properties)
    if filtered and search <= 0:
        return {}
    candidates = _candidate_builds(conn, blist, count, branches, properties, search, running)
    chosen = _newest_kept(candidates, _with_properties(conn, candidates, properties), count)
    by_id = queries.builds_by_id(conn, [i for ids in chosen.values() for i in ids],
                                 details=False)
    return {bid: [by_id[i] for i in ids if i in by_id] for bid, ids in chosen.items() if ids}


def finished_build_rows(conn: Connection, builder_list: Iterable[BuilderInfo], count: int
                        ) -> list[Any]:
    """The builds :func:`finished_builds` would return without filters, as light rows
    (``id``, ``builderid``, ``number``, ``started_at``, ``finished_at``, ``results``) in
    one list, newest first per builder. For a choice among many builders' builds of which
    few are kept (a feed keeps 25 of 25 per builder): reading every candidate whole cost
    more than everything else of such a page. Queries: the builds' windows (one per
    :data:`~bbweb.status.batching.GROUP` builders) and the running counts."""
    blist = [b for b in builder_list if b.id >= 0 and b.next_number > 0]
    if count <= 0 or not blist:
        return []
    taken: dict[int, int] = {}
    out = []
    for r in _candidate_builds(conn, blist, count, None, None, 0, None):
        n = taken.get(r.builderid, 0)
        if n < count:
            taken[r.builderid] = n + 1
            out.append(r)
    return out


def _candidate_builds(conn: Connection, blist: list[BuilderInfo], count: int,
                      branches: set[str | None] | None, properties: dict[str, str] | None,
                      search: int, running: dict[int, int] | None) -> list[Any]:
    """The finished builds to choose from (rows of id, builderid, number), newest first
    per builder: with a branch filter alone, each builder's walk stopped at its
    ``count``-th match; else each builder's window (``count`` plus its running builds,
    ``search`` with a filter)."""
    filtered = bool(branches) or bool(properties)
    if branches and not properties:
        return _newest_on_branches(conn, blist, count, search, branches)
    if not filtered and running is None:
        running = running_counts(conn, [b.id for b in blist])
    windows = {b.id: (search if filtered else count + (running or {}).get(b.id, 0))
               for b in blist}
    ranges = batching.number_windows((b.id, b.next_number - windows[b.id])
                                     for b in blist)
    # Only the (builderid, number) ranges go to SQL: with ``finished_at`` in the WHERE
    # clause too, planners may prefer another index and read far more rows.
    query = (sa.select(builds.c.id, builds.c.builderid, builds.c.number,
                       builds.c.started_at, builds.c.finished_at, builds.c.results)
             .order_by(builds.c.builderid, builds.c.number.desc()))
    match = [on_branches(branches)] if branches else []
    return [r for r in batching.rows_matching_any(
            conn, ranges, lambda cond: query.where(cond, *match))
            if r.finished_at is not None]


def _with_properties(conn: Connection, candidates: list[Any],
                     properties: dict[str, str] | None) -> set[int]:
    """The ids of the candidates whose properties match (all of them without a filter)."""
    keep = {r.id for r in candidates}
    if properties:
        found_props = build_property_values(conn, keep, properties)
        keep = {i for i in keep if matches_properties(found_props.get(i, []), properties)}
    return keep


def _newest_kept(candidates: list[Any], keep: set[int], count: int) -> dict[int, list[int]]:
    """builderid -> the ids of its newest ``count`` kept candidates."""
    chosen: dict[int, list[int]] = {}
    for r in candidates:
        if r.id in keep and len(chosen.setdefault(r.builderid, [])) < count:
            chosen[r.builderid].append(r.id)
    return chosen


_Build = TypeVar("_Build", bound=Any)  # BuildInfo or a row of the builds table


def merge_by_finish(per_builder: Iterable[list[_Build]], count: int) -> list[_Build]:
    """Builds of several builders (:class:`BuildInfo` or rows of the builds table), newest
    finish first, at most ``count``."""
    merged = [b for lst in per_builder for b in lst]
    merged.sort(key=lambda b: (b.finished_at or 0.0, b.started_at, b.id), reverse=True)
    return merged[:max(count, 0)]


# -- slaves -------------------------------------------------------------------------------------

def slave_recent_builds(conn: Connection, slaveid: int, builderids: Iterable[int],
                        count: int) -> list[BuildInfo]:
    """The newest ``count`` finished builds a slave ran on the given builders, newest
    finish first: a backward walk of the ``(slaveid, finished_at)`` index. Two queries."""
    bids = sorted(set(builderids))
    if count <= 0 or not bids:
        return []
    rows = conn.execute(
        sa.select(builds.c.id)
        .where(builds.c.slaveid == slaveid, builds.c.finished_at.isnot(None),
               builds.c.builderid.in_(bids))
        .order_by(builds.c.finished_at.desc(), builds.c.id.desc())
        .limit(count)).all()
    by_id = queries.builds_by_id(conn, [r.id for r in rows], details=False)
    found = [by_id[r.id] for r in rows if r.id in by_id]
    found.sort(key=lambda b: (b.finished_at or 0.0, b.id), reverse=True)
    return found


def running_by_slave(conn: Connection, slaveids: Iterable[int] | None = None,
                     *, details: bool = False) -> dict[str, list[BuildInfo]]:
    """slave name -> its running builds, oldest first (one query over running builds,
    plus their details when ``details``)."""
    out: dict[str, list[BuildInfo]] = {}
    for b in queries.running_builds(conn, slaveids=slaveids, details=details):
        if b.slave is not None:
            out.setdefault(b.slave, []).append(b)
    return out


# -- build tables -------------------------------------------------------------------------------

def load_table_details(conn: Connection, found: list[BuildInfo]) -> None:
    """Fill ``properties`` and ``sourcestamps`` (with changes) of builds shown in a build
    table: a fixed handful of queries for the whole table, steps and logs left out."""
    todo = [b for b in found if not b.details_loaded]
    if not todo:
        return
    ids = [b.id for b in todo]
    props = queries.build_properties(conn, ids)
    stamps = queries.build_sourcestamps(conn, ids)
    for b in todo:
        b.properties = props.get(b.id, [])
        b.sourcestamps = stamps.get(b.id, [])


@dataclass
class Revision:
    """One line of a build table's Revision cell."""

    text: str
    codebase: str = ""
    repository: str = ""
    is_revision: bool = True  # False for the placeholders ("unknown", "??", …)


@dataclass
class BuildRow:
    """A build as a build table or a one-line entry shows it."""

    build: BuildInfo
    revisions: list[Revision] = field(default_factory=list)
    interested: list[str] = field(default_factory=list)

    @property
    def multiple_revs(self) -> bool:
        return len(self.revisions) > 1


def _got_revision(build: BuildInfo, codebase: str) -> str | None:
    value = next((v for n, v, _s in build.properties if n == "got_revision"), None)
    if isinstance(value, dict):
        value = value.get(codebase)
    if value is None or value == "":
        return None
    return str(value)


def revisions(build: BuildInfo) -> list[Revision]:
    """0.8's ``rev_list``: what the Revision cell shows.

    * no sourcestamp: "unknown";
    * one: its ``got_revision`` (for its codebase), else the revision asked for, else "??";
    * several: for each that has a branch, revision, patch or changes: its branch, else
      ``got_revision``, else revision, else "??"; "most recent" when none qualified.
    """
    stamps = build.sourcestamps
    if not stamps:
        return [Revision("unknown", is_revision=False)]
    if len(stamps) == 1:
        ss = stamps[0]
        rev = _got_revision(build, ss.codebase) or ss.revision
        if rev:
            return [Revision(rev, "", ss.repository)]
        return [Revision("??", is_revision=False)]
    out: list[Revision] = []
    for ss in stamps:
        if not (ss.branch or ss.revision or ss.patch is not None or ss.changes):
            continue
        if ss.branch:
            out.append(Revision(ss.branch, ss.codebase, ss.repository, is_revision=False))
            continue
        rev = _got_revision(build, ss.codebase) or ss.revision
        if rev:
            out.append(Revision(rev, ss.codebase, ss.repository))
        else:
            out.append(Revision("??", ss.codebase, is_revision=False))
    return out or [Revision("most recent", is_revision=False)]


def interested_users(build: BuildInfo) -> list[str]:
    """The build's blamelist: distinct authors of its changes, sorted."""
    return build.blame


def build_rows(found: Iterable[BuildInfo]) -> list[BuildRow]:
    """Table rows for builds whose table details are loaded."""
    return [BuildRow(b, revisions(b), interested_users(b)) for b in found]
