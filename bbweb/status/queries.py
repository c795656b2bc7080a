"""Read queries shared by the JSON API, the HTML pages and the notifiers.

Plain functions over a SQLAlchemy :class:`~sqlalchemy.engine.Connection` that return
dataclasses. The rule every function here keeps: **the number of queries and the rows read
depend on what the caller asked for, never on how much history exists.**

* A build is found through the ``(builderid, number)`` unique index; "relative" numbers
  (``-1`` = latest started) are plain arithmetic on ``builders.next_number`` because build
  numbers are handed out contiguously inside the claim transaction.
* Everything a set of builds needs (steps, logs, properties, sourcestamps, changes) is read
  with one ``IN (...)`` query per table for the whole set (:func:`load_build_details`), so a
  page of twenty builds costs the same handful of queries as a page of one.
* Listing every build number of a builder (:func:`build_numbers`) is the only full-history
  read, and it is an index-only scan.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Iterable
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db import schema
from bbweb.db.schema import (
    builders,
    buildrequests,
    builds,
    buildset_properties,
    buildsets,
    change_files,
    change_properties,
    changes,
    event_counter,
    logs,
    slaves,
    sourcestamp_changes,
    sourcestamps,
    steps,
)
from bbweb.mastercfg.master import MasterConfig
from bbweb.status import batching
from bbweb.status.records import (
    BuilderInfo,
    BuilderSummary,
    BuildInfo,
    BuildRequestInfo,
    ChangeInfo,
    LogInfo,
    PatchInfo,
    Property,
    SlaveInfo,
    SourceStampInfo,
    StepInfo,
)
from bbweb.values.numbers import in_int_range
from bbweb.values.validation import TOO_DEEP, displayable, may_need_cleaning

log = logging.getLogger("bbweb.status")
_LOGGED_LIMIT = 1000
_logged: set[str] = set()


def decode_json(text: str | None, default: Any, what: str = "a stored value") -> Any:
    """A JSON column as pages and the JSON API can show it; every JSON column the status
    layer reads (properties, step text and urls, slave info) is decoded here.

    Rows stored before values were checked where they enter
    (:mod:`bbweb.values.validation`) may hold what no page can render: an unpaired
    surrogate (from a ``"\\ud800"`` escape) or nesting deeper than Python's recursion
    limit. Such a value is shown repaired (U+FFFD, a "nested too deeply" marker) and
    undecodable text as ``default``, each logged once per process, so one bad row never
    makes a page answer 500. Where ``default`` is a list or an object, the value is one
    too (a list holding what was stored; ``default`` for what is no object), since pages
    iterate over it."""
    if text is None or text == "":
        return default
    return _decode(text, default, what)[0]


def _decode(text: str, default: Any, what: str) -> tuple[Any, bool]:
    """:func:`decode_json` of a non-empty text, and whether the text was shown as stored
    (nothing repaired, replaced or logged)."""
    clean = True
    try:
        value = json.loads(text)
    except RecursionError:
        _log_once(what, "nested too deeply to decode")
        value, clean = TOO_DEEP, False
    except ValueError:
        _log_once(what, "not valid JSON")
        return default, False
    else:
        if may_need_cleaning(text):
            clean = False
            value, problems = displayable(value)
            if problems:
                _log_once(what, ", ".join(problems))
    if isinstance(default, list) and not isinstance(value, list):
        return [value], clean
    if isinstance(default, dict) and not isinstance(value, dict):
        _log_once(what, "not a JSON object")
        return default, False
    return value, clean


_SCALARS = frozenset({str, int, float, bool, type(None)})
_MISSING = object()


class JsonColumn:
    """:func:`decode_json` for one JSON column, each distinct short text decoded once per
    process.

    Most rows of a column hold one of a few texts (``{}``, ``["compile"]``, a property
    value every build repeats) and decoding them was most of what reading a page of builds
    cost. A text that decodes cleanly to a scalar, or to a list or an object of scalars,
    is remembered (at most ``SIZE`` texts of at most ``LONGEST`` characters: the memo
    starts again when full); each row gets its own shallow copy of a container, so no row
    shares, or can change, another's value. Anything else (nested values, a row that must
    be repaired and logged) is decoded row by row, as :func:`decode_json` does."""

    SIZE = 1024
    LONGEST = 256
    __slots__ = ("_default", "_seen")

    def __init__(self, default: list[Any] | dict[str, Any] | None) -> None:
        self._default = default
        self._seen: dict[str, Any] = {}

    def __call__(self, text: str | None, what: str, *args: object) -> Any:
        """The value of ``text``; ``what % args`` names the row in a log line."""
        default = self._default
        if text is None or text == "":
            return default.copy() if default is not None else None
        value = self._seen.get(text, _MISSING)
        if value is _MISSING:
            fresh = default.copy() if default is not None else None
            value, clean = _decode(text, fresh, what % args if args else what)
            if not (clean and len(text) <= self.LONGEST and _flat(value)):
                return value
            if len(self._seen) >= self.SIZE:
                self._seen.clear()
            self._seen[text] = value
        return value.copy() if type(value) is list or type(value) is dict else value


def _flat(value: Any) -> bool:
    """A scalar, or a list or an object of scalars."""
    kind = type(value)
    if kind is list:
        return all(type(v) in _SCALARS for v in value)
    if kind is dict:
        return all(type(v) in _SCALARS for v in value.values())
    return kind in _SCALARS


def _log_once(what: str, problem: str) -> None:
    key = f"{what}: {problem}"
    if key in _logged:
        return
    if len(_logged) < _LOGGED_LIMIT:
        _logged.add(key)
    log.warning("%s cannot be shown as stored (%s); it is shown repaired", what, problem)


_json = decode_json


# -- builders ---------------------------------------------------------------------------------

def _builder(row: Any) -> BuilderInfo:
    return BuilderInfo(id=row.id, name=row.name, category=row.category, builddir=row.builddir,
                       next_number=row.next_number, active=bool(row.active))


# the statements every builder summary runs, built once (see _BUILDS_BY_NUMBER)
_BUILDER_NAMED = sa.select(builders).where(builders.c.name == sa.bindparam("name"))
_RUNNING_NUMBERS = (sa.select(builds.c.builderid, builds.c.number)
                    .where(builds.c.finished_at.is_(None))
                    .order_by(builds.c.builderid, builds.c.number))
_CONNECTED = sa.select(slaves.c.name).where(slaves.c.connected.is_(True))
_ALL_BUILDERS = sa.select(builders.c.id, builders.c.name, builders.c.category,
                          builders.c.builddir, builders.c.next_number, builders.c.active)


def builder_rows(conn: Connection, names: Iterable[str] | None = None
                 ) -> dict[str, BuilderInfo]:
    """Builder rows by name (all rows when ``names`` is None). One query.

    Several names read the whole (small: one row per builder ever configured) table and
    pick here: binding a list of names cost more than reading the rows it leaves out."""
    if names is None:
        return {r.name: _builder(r) for r in conn.execute(_ALL_BUILDERS)}
    names = list(names)
    if not names:
        return {}
    if len(names) == 1:
        # (an expanding IN of one name costs twice what the statement does)
        return {r.name: _builder(r) for r in conn.execute(_BUILDER_NAMED, {"name": names[0]})}
    wanted = set(names)
    # plain tuples: a Row's attributes cost more than the rest of building the object
    return {name: BuilderInfo(id=bid, name=name, category=category, builddir=builddir,
                              next_number=next_number, active=bool(active))
            for bid, name, category, builddir, next_number, active
            in conn.execute(_ALL_BUILDERS) if name in wanted}


def get_builder(conn: Connection, name: str) -> BuilderInfo | None:
    return builder_rows(conn, [name]).get(name)


def pending_counts(conn: Connection, builderids: Iterable[int]) -> dict[int, int]:
    """builderid -> number of unclaimed, incomplete build requests. One query."""
    ids = sorted(set(builderids))
    if not ids:
        return {}
    # one statement per number of builders, its ids plain parameters: an expanding IN is
    # rewritten at every execution, which cost more than counting
    rows = conn.execute(_pending_counts_of(len(ids)), {f"b{i}": b for i, b in enumerate(ids)})
    return {builderid: int(count) for builderid, count in rows}


@functools.lru_cache(maxsize=32)
def _pending_counts_of(n: int) -> sa.Select[Any]:
    return (sa.select(buildrequests.c.builderid, sa.func.count())
            .where(buildrequests.c.builderid.in_([sa.bindparam(f"b{i}") for i in range(n)]),
                   buildrequests.c.complete.is_(False),
                   buildrequests.c.claimed_at.is_(None))
            .group_by(buildrequests.c.builderid))


def current_build_numbers(conn: Connection, builderids: Iterable[int]) -> dict[int, list[int]]:
    """builderid -> numbers of its running builds, ascending. One query."""
    ids = list(builderids)
    if not ids:
        return {}
    # Only ``finished_at IS NULL`` goes to the database: that is the running-builds index
    # (rows = builds running anywhere). With the builder in the WHERE clause too, SQLite
    # prefers the (builderid, number) index and walks the builder's whole history.
    wanted = set(ids)
    out: dict[int, list[int]] = {}
    for builderid, number in conn.execute(_RUNNING_NUMBERS):
        if builderid in wanted:
            out.setdefault(builderid, []).append(number)
    return out


def connected_slave_names(conn: Connection, names: Iterable[str]) -> set[str]:
    """Which of ``names`` are connected: the connected slaves are few (one row per worker
    process that runs), so they are all read and picked here."""
    wanted = set(names)
    if not wanted:
        return set()
    return {name for (name,) in conn.execute(_CONNECTED) if name in wanted}


class BuilderActivity(NamedTuple):
    """What the builders' summaries read besides their rows: builder id -> numbers of its
    running builds and -> its unclaimed requests, and the connected slaves among theirs."""

    current: dict[int, list[int]]
    pending: dict[int, int]
    connected: set[str]


def builder_activity(conn: Connection, cfg: MasterConfig, names: list[str],
                     rows: dict[str, BuilderInfo]) -> BuilderActivity:
    """The activity of configured builders ``names`` whose ``rows`` were read. Three
    queries however many builders."""
    ids = [rows[n].id for n in names if n in rows]
    return BuilderActivity(
        current_build_numbers(conn, ids), pending_counts(conn, ids),
        connected_slave_names(conn, {s for n in names for s in cfg.builders[n].slavenames}))


# The builders' rows, the running builds' numbers and the connected slaves' names, as one
# statement for the list of all builders: three small reads, each of which cost more in
# SQLAlchemy than in the database. ``kind`` tells the rows apart (0 builder, 1 running
# build: builderid and number, 2 connected slave: name).
_BUILDERS_RUNNING_CONNECTED = sa.union_all(
    sa.select(sa.literal_column("0").label("kind"), builders.c.id, builders.c.name,
              builders.c.category, builders.c.builddir, builders.c.next_number,
              builders.c.active),
    sa.select(sa.literal_column("1"), builds.c.builderid, sa.null(), sa.null(), sa.null(),
              builds.c.number, sa.null())
    .where(builds.c.finished_at.is_(None)),
    sa.select(sa.literal_column("2"), sa.null(), slaves.c.name, sa.null(), sa.null(),
              sa.null(), sa.null())
    .where(slaves.c.connected.is_(True)))


def all_builders_activity(conn: Connection, cfg: MasterConfig, names: list[str]
                          ) -> tuple[dict[str, BuilderInfo], BuilderActivity]:
    """:func:`builder_rows` and :func:`builder_activity` of configured builders ``names``
    (rows by name; a builder without one is left out) in two queries."""
    wanted = set(names)
    rows: dict[str, BuilderInfo] = {}
    running: list[tuple[int, int]] = []
    connected_all: set[str] = set()
    for kind, bid, name, category, builddir, number, active in conn.execute(
            _BUILDERS_RUNNING_CONNECTED):
        if kind == 0:
            if name in wanted:
                rows[name] = BuilderInfo(id=bid, name=name, category=category,
                                         builddir=builddir, next_number=number,
                                         active=bool(active))
        elif kind == 1:
            running.append((bid, number))
        else:
            connected_all.add(name)
    ids = {rows[n].id for n in names if n in rows}
    current: dict[int, list[int]] = {}
    for builderid, number in sorted(running):
        if builderid in ids:
            current.setdefault(builderid, []).append(number)
    slave_names = {s for n in names for s in cfg.builders[n].slavenames}
    return rows, BuilderActivity(current, pending_counts(conn, ids),
                                 connected_all & slave_names)


def builder_summaries(conn: Connection, cfg: MasterConfig, names: Iterable[str] | None = None,
                      rows: dict[str, BuilderInfo] | None = None) -> dict[str, BuilderSummary]:
    """Summaries of configured builders (all of them when ``names`` is None), in config
    order. Four queries however many builders; pass ``rows`` to save the first.

    ``state`` is ``offline`` when none of the builder's slaves is connected, else
    ``building`` when a build runs, else ``idle``.
    """
    wanted = [n for n in (cfg.builders if names is None else names) if n in cfg.builders]
    if rows is None:
        rows = builder_rows(conn, wanted)
    return summarize_builders(cfg, wanted, rows, builder_activity(conn, cfg, wanted, rows))


def summarize_builders(cfg: MasterConfig, names: list[str], rows: dict[str, BuilderInfo],
                       activity: BuilderActivity) -> dict[str, BuilderSummary]:
    """:func:`builder_summaries` of what was read (configured ``names``, in that order)."""
    current, pending, connected = activity
    out: dict[str, BuilderSummary] = {}
    for name in names:
        bcfg = cfg.builders[name]
        row = rows.get(name)
        cur = current.get(row.id, []) if row else []
        conn_slaves = [s for s in bcfg.slavenames if s in connected]
        if not conn_slaves:
            state = "offline"
        elif cur:
            state = "building"
        else:
            state = "idle"
        out[name] = BuilderSummary(
            name=name, category=bcfg.category, basedir=bcfg.builddir,
            slavenames=list(bcfg.slavenames), schedulers=cfg.schedulers_for_builder(name),
            current_builds=list(cur), pending=pending.get(row.id, 0) if row else 0,
            state=state, connected_slaves=conn_slaves,
            next_number=row.next_number if row else 0)
    return out


# -- builds -------------------------------------------------------------------------------------

def _build_query() -> sa.Select[Any]:
    return (sa.select(builds, builders.c.name.label("builder_name"),
                      slaves.c.name.label("slave_name"))
            .join(builders, builders.c.id == builds.c.builderid)
            .outerjoin(slaves, slaves.c.id == builds.c.slaveid))


# The statements of the build-detail reads, built once: building a statement (and its cache
# key) each time cost more than SQLite took to run it. An expanding IN takes any number of
# ids.
_BUILDS_BY_NUMBER = _build_query().where(
    builds.c.builderid == sa.bindparam("builderid"),
    builds.c.number.in_(sa.bindparam("numbers", expanding=True)))
_BUILD_BY_NUMBER = _build_query().where(builds.c.builderid == sa.bindparam("builderid"),
                                        builds.c.number == sa.bindparam("number"))
_STEPS_OF = (sa.select(steps.c.id, steps.c.buildid, steps.c.number, steps.c.name,
                       steps.c.started_at, steps.c.finished_at, steps.c.results, steps.c.text,
                       steps.c.urls, steps.c.statistics, steps.c.hidden)
             .where(steps.c.buildid.in_(sa.bindparam("ids", expanding=True)))
             .order_by(steps.c.buildid, steps.c.number))
_LOGS_OF = (sa.select(logs.c.stepid, logs.c.id, logs.c.name, logs.c.num_chunks,
                      logs.c.num_bytes, logs.c.complete)
            .join(steps, steps.c.id == logs.c.stepid)
            .where(steps.c.buildid.in_(sa.bindparam("ids", expanding=True)))
            .order_by(logs.c.stepid, logs.c.id))
_PROPERTIES_OF = (sa.select(schema.build_properties.c.buildid, schema.build_properties.c.name,
                            schema.build_properties.c.value, schema.build_properties.c.source)
                  .where(schema.build_properties.c.buildid.in_(
                      sa.bindparam("ids", expanding=True))))
_CHANGES = (sa.select(changes).where(changes.c.changeid.in_(sa.bindparam("ids", expanding=True)))
            .order_by(changes.c.changeid))
_CHANGE_FILES = (sa.select(change_files.c.changeid, change_files.c.filename)
                 .where(change_files.c.changeid.in_(sa.bindparam("ids", expanding=True)))
                 .order_by(change_files.c.changeid, change_files.c.id))
_CHANGE_PROPERTIES = (sa.select(change_properties.c.changeid, change_properties.c.name,
                                change_properties.c.value, change_properties.c.source)
                      .where(change_properties.c.changeid.in_(
                          sa.bindparam("ids", expanding=True))))
_STAMP_CHANGES = (sa.select(sourcestamp_changes.c.sourcestampid, sourcestamp_changes.c.changeid)
                  .where(sourcestamp_changes.c.sourcestampid.in_(
                      sa.bindparam("ids", expanding=True)))
                  .order_by(sourcestamp_changes.c.sourcestampid, sourcestamp_changes.c.changeid))
_BUILD_STAMPS = (sa.select(sourcestamps, builds.c.id.label("buildid"))
                 .join(schema.buildset_sourcestamps,
                       schema.buildset_sourcestamps.c.sourcestampid == sourcestamps.c.id)
                 .join(buildrequests,
                       buildrequests.c.buildsetid == schema.buildset_sourcestamps.c.buildsetid)
                 .join(builds, builds.c.buildrequestid == buildrequests.c.id)
                 .where(builds.c.id.in_(sa.bindparam("ids", expanding=True)))
                 .order_by(builds.c.id, sourcestamps.c.id))
_RUNNING_BUILDS = (_build_query().where(builds.c.finished_at.is_(None))
                   .order_by(builds.c.started_at, builds.c.id))
_SLAVES_NAMED = sa.select(slaves).where(slaves.c.name.in_(sa.bindparam("names", expanding=True)))
_ALL_SLAVES = sa.select(slaves)
# one memo per JSON column read (see JsonColumn)
_build_text = JsonColumn([])
_step_text = JsonColumn([])
_step_urls = JsonColumn({})
_step_statistics = JsonColumn({})
_build_property = JsonColumn(None)
_change_property = JsonColumn(None)
_slave_info = JsonColumn({})


def _build(row: Any) -> BuildInfo:
    return BuildInfo(
        id=row.id, builderid=row.builderid, builder=row.builder_name, number=row.number,
        buildrequestid=row.buildrequestid, slave=row.slave_name, reason=row.reason or "",
        started_at=row.started_at, finished_at=row.finished_at, results=row.results,
        text=_build_text(row.text, "build %s text", row.id), stop_requested=row.stop_requested,
        doc_version=row.doc_version)


def build_numbers(conn: Connection, builderid: int) -> list[int]:
    """Every build number of a builder, ascending (an index-only scan; the one query here
    that reads a builder's whole history, for ``/json/builders/B/builds``)."""
    return [n for (n,) in conn.execute(sa.select(builds.c.number)
                                       .where(builds.c.builderid == builderid)
                                       .order_by(builds.c.number))]


def get_builds(conn: Connection, builder: BuilderInfo, numbers: Iterable[int], *,
               details: bool = True) -> dict[int, BuildInfo]:
    """Builds of ``builder`` by absolute or relative number, keyed by the number *asked
    for*; numbers that match no build are absent. One query, plus
    :func:`load_build_details` when ``details``."""
    wanted: dict[int, int] = {}
    for n in numbers:
        absolute = builder.resolve_number(n)
        if absolute is not None:
            wanted[n] = absolute
    if not wanted:
        return {}
    numbers = sorted(set(wanted.values()))
    if len(numbers) == 1:
        rows = conn.execute(_BUILD_BY_NUMBER, {"builderid": builder.id, "number": numbers[0]})
    else:
        rows = conn.execute(_BUILDS_BY_NUMBER, {"builderid": builder.id, "numbers": numbers})
    by_number = {r.number: _build(r) for r in rows}
    if details:
        load_build_details(conn, list(by_number.values()))
    return {asked: by_number[n] for asked, n in wanted.items() if n in by_number}


def get_build(conn: Connection, builder: BuilderInfo, number: int, *,
              details: bool = True) -> BuildInfo | None:
    return get_builds(conn, builder, [number], details=details).get(number)


def latest_builds(conn: Connection, builder: BuilderInfo, count: int, *,
                  details: bool = True, finished_only: bool = False) -> list[BuildInfo]:
    """The newest ``count`` builds of a builder, newest first (an index range scan).
    With ``finished_only`` running builds are skipped (still at most ``count`` rows)."""
    if count <= 0 or builder.next_number <= 0:
        return []
    query = _build_query().where(builds.c.builderid == builder.id)
    if finished_only:
        query = query.where(builds.c.finished_at.isnot(None))
    rows = conn.execute(query.order_by(builds.c.number.desc()).limit(count)).all()
    found = [_build(r) for r in rows]
    if details:
        load_build_details(conn, found)
    return found


def builds_by_id(conn: Connection, buildids: Iterable[int], *,
                 details: bool = True) -> dict[int, BuildInfo]:
    ids = sorted(set(buildids))
    if not ids:
        return {}
    found = {r.id: _build(r) for r in conn.execute(_build_query().where(builds.c.id.in_(ids)))}
    if details:
        load_build_details(conn, list(found.values()))
    return found


def running_builds(conn: Connection, *, builderids: Iterable[int] | None = None,
                   slaveids: Iterable[int] | None = None, details: bool = True
                   ) -> list[BuildInfo]:
    """Unfinished builds (optionally of some builders / slaves), oldest first.

    Only ``finished_at IS NULL`` goes to the database (the running-builds index: rows =
    builds running anywhere, a handful); the builder and slave filters are applied here.
    Given ``builderid = ?`` as well, SQLite picks the (builderid, number) index and walks
    the builder's whole history."""
    bids = None if builderids is None else set(builderids)
    sids = None if slaveids is None else set(slaveids)
    if bids == set() or sids == set():
        return []
    found = [_build(r) for r in conn.execute(_RUNNING_BUILDS)
             if (bids is None or r.builderid in bids) and (sids is None or r.slaveid in sids)]
    if details:
        load_build_details(conn, found)
    return found


def build_steps(conn: Connection, buildids: Iterable[int]) -> dict[int, list[StepInfo]]:
    """buildid -> its steps in order, each with its logs. Two queries for any number of
    builds."""
    ids = sorted(set(buildids))
    if not ids:
        return {}
    out: dict[int, list[StepInfo]] = {}
    by_id: dict[int, StepInfo] = {}
    for (stepid, buildid, number, name, started_at, finished_at, results, text, urls,
         statistics, hidden) in conn.execute(_STEPS_OF, {"ids": ids}).all():
        step = StepInfo(id=stepid, buildid=buildid, number=number, name=name,
                        started_at=started_at, finished_at=finished_at, results=results,
                        text=_step_text(text, "step %s text", stepid),
                        urls=_step_urls(urls, "step %s urls", stepid),
                        statistics=_step_statistics(statistics, "step %s statistics", stepid),
                        hidden=bool(hidden))
        mine = out.get(buildid)
        if mine is None:
            out[buildid] = [step]
        else:
            mine.append(step)
        by_id[stepid] = step
    if by_id:
        for stepid, logid, name, num_chunks, num_bytes, complete in conn.execute(
                _LOGS_OF, {"ids": ids}).all():
            by_id[stepid].logs.append(LogInfo(id=logid, name=name, num_chunks=num_chunks,
                                              num_bytes=num_bytes, complete=bool(complete)))
    return out


def _sorted_props(props: Iterable[Property]) -> list[Property]:
    return sorted(props, key=lambda p: p[0])


def build_properties(conn: Connection, buildids: Iterable[int]) -> dict[int, list[Property]]:
    """buildid -> ``[(name, value, source)]`` sorted by name. One query."""
    ids = sorted(set(buildids))
    if not ids:
        return {}
    out: dict[int, list[Property]] = {}
    for buildid, name, value, source in conn.execute(_PROPERTIES_OF, {"ids": ids}).all():
        prop = (name, _build_property(value, "build %s property %r", buildid, name), source)
        mine = out.get(buildid)
        if mine is None:
            out[buildid] = [prop]
        else:
            mine.append(prop)
    return {k: _sorted_props(v) for k, v in out.items()}


def get_changes(conn: Connection, numbers: Iterable[int]) -> dict[int, ChangeInfo]:
    """Changes (with files and properties) by number. Three queries for any number."""
    ids = sorted({n for n in numbers if in_int_range(n)})
    if not ids:
        return {}
    found: dict[int, ChangeInfo] = {}
    for r in conn.execute(_CHANGES, {"ids": ids}).all():
        found[r.changeid] = ChangeInfo(
            number=r.changeid, author=r.author, comments=r.comments, branch=r.branch,
            revision=r.revision, revlink=r.revlink, when=r.when_timestamp,
            category=r.category, repository=r.repository, codebase=r.codebase,
            project=r.project, src=r.src, is_dir=bool(r.is_dir))
    if not found:
        return {}
    present = sorted(found)
    for changeid, filename in conn.execute(_CHANGE_FILES, {"ids": present}).all():
        found[changeid].files.append(filename)
    props: dict[int, list[Property]] = {}
    rows = conn.execute(_CHANGE_PROPERTIES, {"ids": present}).all()
    for changeid, name, value, source in rows:
        props.setdefault(changeid, []).append(
            (name, _change_property(value, "change %s property %r", changeid, name), source))
    for cid, plist in props.items():
        found[cid].properties = _sorted_props(plist)
    return found


def get_change(conn: Connection, number: int) -> ChangeInfo | None:
    return get_changes(conn, [number]).get(number)


def _sourcestamp(r: Any) -> SourceStampInfo:
    patch = None
    if r.patch_body is not None:
        body = r.patch_body
        if isinstance(body, memoryview):
            body = body.tobytes()
        if isinstance(body, bytes):
            body = body.decode("utf-8", errors="replace")
        patch = PatchInfo(level=r.patch_level, body=body, subdir=r.patch_subdir,
                          author=r.patch_author, comment=r.patch_comment)
    return SourceStampInfo(id=r.id, branch=r.branch, revision=r.revision,
                           repository=r.repository, project=r.project, codebase=r.codebase,
                           patch=patch)


def _attach_changes(conn: Connection, stamps: Iterable[SourceStampInfo]) -> None:
    """Fill ``changes`` of the given sourcestamps (four queries for all of them)."""
    by_id: dict[int, list[SourceStampInfo]] = {}
    for ss in stamps:
        by_id.setdefault(ss.id, []).append(ss)
    if not by_id:
        return
    links = conn.execute(_STAMP_CHANGES, {"ids": sorted(by_id)}).all()
    found = get_changes(conn, {r.changeid for r in links})
    for r in links:
        change = found.get(r.changeid)
        if change is not None:
            for ss in by_id[r.sourcestampid]:
                ss.changes.append(change)


def buildset_sourcestamps(conn: Connection, buildsetids: Iterable[int]
                          ) -> dict[int, list[SourceStampInfo]]:
    """buildsetid -> its sourcestamps (ordered by id, one per codebase) with their
    changes."""
    ids = sorted(set(buildsetids))
    if not ids:
        return {}
    out: dict[int, list[SourceStampInfo]] = {}
    rows = conn.execute(sa.select(sourcestamps, schema.buildset_sourcestamps.c.buildsetid)
                        .join(schema.buildset_sourcestamps,
                              schema.buildset_sourcestamps.c.sourcestampid == sourcestamps.c.id)
                        .where(schema.buildset_sourcestamps.c.buildsetid.in_(ids))
                        .order_by(schema.buildset_sourcestamps.c.buildsetid, sourcestamps.c.id))
    for r in rows:
        out.setdefault(r.buildsetid, []).append(_sourcestamp(r))
    _attach_changes(conn, [ss for lst in out.values() for ss in lst])
    return out


def build_sourcestamps(conn: Connection, buildids: Iterable[int]
                       ) -> dict[int, list[SourceStampInfo]]:
    """buildid -> the sourcestamps it built (its request's buildset's), with changes."""
    ids = sorted(set(buildids))
    if not ids:
        return {}
    out: dict[int, list[SourceStampInfo]] = {}
    for r in conn.execute(_BUILD_STAMPS, {"ids": ids}).all():
        out.setdefault(r.buildid, []).append(_sourcestamp(r))
    _attach_changes(conn, [ss for lst in out.values() for ss in lst])
    return out


def load_build_details(conn: Connection, found: list[BuildInfo]) -> None:
    """Fill steps (with logs), properties and sourcestamps (with changes) of many builds
    at once: at most eight queries whatever the number of builds."""
    todo = [b for b in found if not b.details_loaded]
    if not todo:
        return
    ids = [b.id for b in todo]
    all_steps = build_steps(conn, ids)
    props = build_properties(conn, ids)
    stamps = build_sourcestamps(conn, ids)
    for b in todo:
        b.steps = all_steps.get(b.id, [])
        b.properties = props.get(b.id, [])
        b.sourcestamps = stamps.get(b.id, [])
        b.details_loaded = True


# -- slaves -------------------------------------------------------------------------------------

def get_slaves(conn: Connection, cfg: MasterConfig, names: Iterable[str] | None = None
               ) -> dict[str, SlaveInfo]:
    """Configured slaves (all when ``names`` is None; unknown names are dropped) with
    their database state, in config order. One query."""
    wanted = [n for n in (cfg.slaves if names is None else names) if n in cfg.slaves]
    return slave_infos(wanted, slave_rows(conn, wanted))


def slave_rows(conn: Connection, wanted: list[str]) -> dict[str, Any]:
    """The slaves table's rows of the slaves named ``wanted`` that have one, by name. One
    query (none for no names)."""
    if not wanted:
        return {}
    if len(wanted) == 1:
        return {r.name: r for r in conn.execute(_SLAVES_NAMED, {"names": wanted})}
    # the table is small (a row per slave ever seen): read it whole, pick here
    want = set(wanted)
    return {r.name: r for r in conn.execute(_ALL_SLAVES) if r.name in want}


def slave_infos(wanted: list[str], rows: dict[str, Any]) -> dict[str, SlaveInfo]:
    """:func:`get_slaves` of the ``rows`` read (a slave without one never connected)."""
    out: dict[str, SlaveInfo] = {}
    for name in wanted:
        r = rows.get(name)
        if r is None:
            out[name] = SlaveInfo(id=None, name=name, info={}, connected=False,
                                  last_seen=None, connected_at=None, paused=False,
                                  graceful=False)
        else:
            info = _slave_info(r.info, "slave %r info", name)
            out[name] = SlaveInfo(id=r.id, name=name,
                                  info=info if isinstance(info, dict) else {},
                                  connected=bool(r.connected), last_seen=r.last_seen,
                                  connected_at=r.connected_at, paused=bool(r.paused),
                                  graceful=bool(r.graceful))
    return out


class FinishedBuildSlaves:
    """Per process: (builder id, build number) -> slave id of finished builds, for the
    recent windows :func:`recent_builds_by_slave` reads.

    A finished build's slave and its being finished never change (the engine sets both
    once: the slave when the build is claimed, ``finished_at`` when it ends), so once
    read they need not be read again; each request reads only the builds its windows
    hold that were not finished (or not there) when last read: none, on a quiet master.
    Numbers that fall out of a builder's window are forgotten."""

    def __init__(self) -> None:
        self._slaves: dict[int, dict[int, int | None]] = {}
        self._lock = threading.Lock()

    def knows_all(self, windows: list[tuple[int, int, int]]) -> bool:
        """Whether every build of the windows (``(builderid, lowest, next_number)``) is
        known finished: then what :meth:`window_rows` returns for them is settled (it
        reads nothing, and the same windows give the same rows in any later request)."""
        for bid, lowest, top in windows:
            known = self._slaves.get(bid, {})
            for n in range(max(lowest, 0), top):
                if n not in known:
                    return False
        return True

    def window_rows(self, conn: Connection, windows: list[tuple[int, int, int]]
                    ) -> list[tuple[int, int, int | None]]:
        """(builderid, number, slaveid) of the finished builds numbered ``lowest`` and up
        of each ``(builderid, lowest, next_number)``, newest first per builder."""
        todo = []
        for bid, lowest, top in windows:
            known = self._slaves.get(bid, {})
            first = next((n for n in range(max(lowest, 0), top) if n not in known), None)
            if first is not None:
                todo.append((bid, first))
        rows = batching.rows_in_windows(conn, todo, _RECENT_BY_SLAVE) if todo else []
        out: list[tuple[int, int, int | None]] = []
        with self._lock:
            for builderid, number, slaveid, finished_at in rows:
                if finished_at is not None:
                    self._slaves.setdefault(builderid, {})[number] = slaveid
            for bid, lowest, _top in windows:
                kept = self._slaves.get(bid)
                if not kept:
                    continue
                for number in [n for n in kept if n < lowest]:
                    del kept[number]
                out.extend((bid, n, kept[n]) for n in sorted(kept, reverse=True))
        return out


def recent_builds_by_slave(conn: Connection, builder_list: Iterable[BuilderInfo],
                           slaveids: Iterable[int], window: int,
                           known: FinishedBuildSlaves | None = None
                           ) -> dict[int, dict[str, list[int]]]:
    """slaveid -> {builder name: numbers of its finished builds among the builder's
    ``window`` most recent builds}, numbers newest first. One query (per
    :data:`~bbweb.status.batching.GROUP` builders); rows read are bounded
    by ``window`` × builders (an index range per builder), never by history. With
    ``known`` (the process's finished builds), only the builds not known finished."""
    blist = list(builder_list)
    sids = sorted(set(slaveids))
    if window <= 0 or not blist or not sids:
        return {}
    names = {b.id: b.name for b in blist}
    # one explicit (builderid, number) range per builder, so that each is an index range
    # scan (a join on builders.next_number makes PostgreSQL scan the whole table)
    ranges = [(b.id, b.next_number - window) for b in blist if b.next_number > 0]
    if not ranges:
        return {}
    wanted = set(sids)
    out: dict[int, dict[str, list[int]]] = {}
    if known is not None:
        tops = {b.id: b.next_number for b in blist}
        for builderid, number, slaveid in known.window_rows(
                conn, [(bid, lowest, tops[bid]) for bid, lowest in ranges]):
            if slaveid in wanted:
                out.setdefault(slaveid, {}).setdefault(names[builderid], []).append(number)
        return out
    rows = batching.rows_in_windows(conn, ranges, _RECENT_BY_SLAVE)
    for builderid, number, slaveid, finished_at in rows:
        if finished_at is not None and slaveid in wanted:
            out.setdefault(slaveid, {}).setdefault(names[builderid], []).append(number)
    return out


# The slave and finished filters are applied in Python, not in SQL: given them, planners
# pick the (slaveid, finished_at) index and read every build the slave ever ran.
_RECENT_BY_SLAVE = (sa.select(builds.c.builderid, builds.c.number, builds.c.slaveid,
                              builds.c.finished_at)
                    .order_by(builds.c.builderid, builds.c.number.desc()))


# -- build requests -----------------------------------------------------------------------------

def pending_build_requests(conn: Connection, builder: BuilderInfo, *,
                           details: bool = True) -> list[BuildRequestInfo]:
    """The builder's unclaimed requests in the order they will be claimed (priority, then
    submission). With ``details``: buildset properties, sourcestamps with changes and the
    earlier builds of each request, in a bounded number of queries for the whole list."""
    rows = conn.execute(
        sa.select(buildrequests, buildsets.c.reason)
        .join(buildsets, buildsets.c.id == buildrequests.c.buildsetid)
        .where(buildrequests.c.builderid == builder.id, buildrequests.c.complete.is_(False),
               buildrequests.c.claimed_at.is_(None))
        .order_by(buildrequests.c.priority.desc(), buildrequests.c.submitted_at,
                  buildrequests.c.id)).all()
    reqs = [BuildRequestInfo(id=r.id, buildsetid=r.buildsetid, builder=builder.name,
                             priority=r.priority, submitted_at=r.submitted_at,
                             reason=r.reason or "") for r in rows]
    if not details or not reqs:
        return reqs
    bsids = sorted({r.buildsetid for r in reqs})
    props: dict[int, list[Property]] = {}
    for r in conn.execute(sa.select(buildset_properties)
                          .where(buildset_properties.c.buildsetid.in_(bsids))):
        props.setdefault(r.buildsetid, []).append(
            (r.name, _json(r.value, None, f"buildset {r.buildsetid} property {r.name!r}"),
             r.source))
    stamps = buildset_sourcestamps(conn, bsids)
    earlier = conn.execute(_build_query().where(
        builds.c.buildrequestid.in_([r.id for r in reqs])).order_by(builds.c.number)).all()
    attempts = [_build(r) for r in earlier]
    load_build_details(conn, attempts)
    by_request: dict[int, list[BuildInfo]] = {}
    for b in attempts:
        by_request.setdefault(b.buildrequestid, []).append(b)
    for req in reqs:
        req.properties = _sorted_props(props.get(req.buildsetid, []))
        req.sourcestamps = stamps.get(req.buildsetid, [])
        req.builds = by_request.get(req.id, [])
    return reqs


# -- master-wide counters -----------------------------------------------------------------------

def master_counters(conn: Connection, cfg: MasterConfig) -> dict[str, int]:
    """Cheap master-wide counters, each one indexed or small-table query:

    * ``changes.latest_number`` – number of the newest change (0 when none);
    * ``builds.started`` – builds ever started on the configured builders (sum of their
      ``next_number``);
    * ``builds.running`` – builds that have not finished;
    * ``buildrequests.pending`` – build requests waiting for a slave;
    * ``slaves.connected`` / ``slaves.configured`` – configured slaves connected now /
      configured;
    * ``events.latest_id`` – id of the newest event in the outbox.
    """
    latest_change = conn.execute(sa.select(sa.func.max(changes.c.changeid))).scalar() or 0
    rows = builder_rows(conn, cfg.builders)
    started = sum(b.next_number for b in rows.values())
    running = conn.execute(sa.select(sa.func.count()).select_from(builds)
                           .where(builds.c.finished_at.is_(None))).scalar() or 0
    # per configured builder, so each count is a range of ix_buildrequests_pending
    pending = sum(pending_counts(conn, [b.id for b in rows.values()]).values())
    connected = len(connected_slave_names(conn, cfg.slaves))
    latest_event = conn.execute(sa.select(sa.func.max(event_counter.c.value))).scalar() or 0
    return {
        "changes.latest_number": int(latest_change),
        "builds.started": int(started),
        "builds.running": int(running),
        "buildrequests.pending": int(pending),
        "slaves.connected": connected,
        "slaves.configured": len(cfg.slaves),
        "events.latest_id": int(latest_event),
    }


def database_version(conn: Connection) -> str:
    """``SQLite 3.40.1`` / ``PostgreSQL 15.18``: for the about page."""
    if conn.dialect.name == "sqlite":
        return "SQLite " + str(conn.exec_driver_sql("select sqlite_version()").scalar_one())
    if conn.dialect.name == "postgresql":
        text = conn.exec_driver_sql("show server_version").scalar_one()
        return "PostgreSQL " + str(text).split(" ")[0]
    info = conn.dialect.server_version_info or ()
    return f"{conn.dialect.name} {'.'.join(str(p) for p in info)}".strip()
