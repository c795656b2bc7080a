"""The live status stream (``/json/events``): the event outbox as Server-Sent Events.

Buildbot 0.8 offered a live feed of builder, build, step and log events through its
Perspective Broker port (``PBListener``, used by ``buildbot statuslog`` and
``statusgui``). Here the same feed is read from the event outbox, the ``events`` table
every state change writes in its own transaction, whose ids only grow and never skip
(:mod:`bbweb.engine.events`). A client that remembers the last id it saw resumes exactly
after it, whichever web process it reconnects to and across restarts of the daemon.

Memory per client is bounded: events are read :data:`PAGE` at a time, each page in its own
short read transaction, and log chunks through :mod:`bbweb.status.logstream` a batch at a
time; nothing grows with the length of the history or of a log.

The log chunks of one build (``kind=logs``) are not events in the outbox; their place in
the stream is a position of its own, carried in the SSE id (:class:`Position`).
"""

from __future__ import annotations

import bisect
import json
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.connection import Database
from bbweb.db.schema import builders, builds, events, logs, steps
from bbweb.status import logstream
from bbweb.status.eventwait import event_id_in, latest_event_id, wait_for_events

PAGE = 100
"""Events read per query."""

HEARTBEAT_SECONDS = 15.0
"""A comment line is sent after this long without an event, so that proxies keep the
connection and a client that went away is noticed."""

STREAM_MAX_SECONDS = 600.0
"""A stream ends after this long; the client reconnects with ``Last-Event-ID`` (browsers
do it by themselves), which lets a web process be recycled without losing anything."""

LOG_POLL_SECONDS = 0.25
"""How often the logs of a followed build are looked at (chunks are not events)."""

RETRY_MS = 3000
"""The ``retry:`` an EventSource waits before it reconnects."""

RECENT_EVENTS = 2000
"""Outbox rows each web process keeps for its streams (a client further behind reads the
outbox itself)."""

KINDS: dict[str, tuple[str, ...]] = {
    "builds": ("builder.", "build.", "buildrequest.", "buildset."),
    "steps": ("step.",),
    "changes": ("change.",),
    "slaves": ("slave.",),
    "logs": (),  # log chunks of one build: not in the outbox
}
# events the daemon writes for itself (a poll request for the pollers): not status
INTERNAL_PREFIXES = ("poller.",)
_BUILD_CACHE = 1024  # buildid → (builder, number) lookups a process keeps


class StreamArgumentError(ValueError):
    """A stream request that cannot be served as asked (answered with 400)."""


@dataclass
class Position:
    """Where a stream is: the last event id sent and, when logs are followed, how far each
    log of the build was sent. Every log with an id up to ``logs_done`` is complete and was
    sent whole, with its ``log.finished``, so the position stays short however many steps
    a build has; above it, ``logs`` holds the last chunk sent of each log announced (-1:
    none yet) and ``finished`` the logs sent whole whose ``log.finished`` went out while a
    log before them was still open. Written ``E``, or for a log stream
    ``E/D/L:S,L:S/L,L``."""

    event: int
    logs_done: int = 0
    logs: dict[int, int] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)

    def text(self, with_logs: bool) -> str:
        if not with_logs:
            return str(self.event)
        text = f"{self.event}/{self.logs_done}"
        pairs = ",".join(f"{lid}:{seq}" for lid, seq in sorted(self.logs.items()))
        if pairs or self.finished:
            text += "/" + pairs
        if self.finished:
            text += "/" + ",".join(str(lid) for lid in sorted(self.finished))
        return text

    @classmethod
    def parse(cls, text: str) -> Position:
        parts = text.strip().split("/")
        try:
            if len(parts) > 4:
                raise ValueError
            event = int(parts[0])
            done = int(parts[1]) if len(parts) > 1 else 0
            pairs: dict[int, int] = {}
            if len(parts) > 2 and parts[2]:
                for pair in parts[2].split(","):
                    lid, seq = pair.split(":")
                    pairs[int(lid)] = int(seq)
            finished = {int(lid) for lid in parts[3].split(",")} if len(parts) > 3 else set()
        except ValueError:
            raise StreamArgumentError(
                f"{text!r} is not a stream position (an event id such as 42, or for a "
                "log stream the id of its last event, such as 42/7/8:3)") from None
        if (event < 0 or done < 0 or any(s < -1 for s in pairs.values())
                or any(lid <= done for lid in [*pairs, *finished])):
            raise StreamArgumentError(f"{text!r} is not a stream position")
        return cls(event, done, pairs, finished)


@dataclass
class StreamQuery:
    """What a client asked for: the kinds, builders, and for ``logs`` one build."""

    kinds: frozenset[str]
    builders: frozenset[str] = frozenset()
    build: int | None = None
    buildid: int | None = None  # resolved from the builder and number
    everything: bool = False  # no kind asked for: every event but the internal ones

    @property
    def follows_logs(self) -> bool:
        return "logs" in self.kinds


def parse_query(kinds: list[str], builder_names: list[str], build: str | None) -> StreamQuery:
    """Check the arguments of a stream request; :class:`StreamArgumentError` says what is
    wrong in a sentence for the client."""
    wanted: set[str] = set()
    for kind in kinds:
        for name in kind.split(","):
            name = name.strip()
            if name not in KINDS:
                raise StreamArgumentError(
                    f"unknown kind {name!r}: kind is one of {', '.join(KINDS)}")
            wanted.add(name)
    if any(not n for n in builder_names):
        raise StreamArgumentError("builder must not be empty")
    names = frozenset(builder_names)
    number: int | None = None
    if build is not None:
        try:
            number = int(build)
        except ValueError:
            raise StreamArgumentError(f"build must be a build number, not {build!r}") from None
        if number < 0:
            raise StreamArgumentError("build must be a build number (0 or more)")
        if len(names) != 1:
            raise StreamArgumentError("build=N needs exactly one builder=NAME")
        if not wanted:
            wanted = {"builds", "steps", "logs"}
    elif "logs" in wanted:
        raise StreamArgumentError("kind=logs follows the logs of one build: give "
                                  "builder=NAME and build=N")
    if not wanted:
        return StreamQuery(frozenset(k for k in KINDS if k != "logs"), names, number,
                           everything=True)
    return StreamQuery(frozenset(wanted), names, number)


def resolve(db: Database, query: StreamQuery) -> None:
    """Check that the builders (and the build) asked for exist; sets ``query.buildid``."""
    with db.read() as conn:
        if query.builders:
            known = set(conn.execute(sa.select(builders.c.name)
                                     .where(builders.c.name.in_(sorted(query.builders))))
                        .scalars())
            unknown = sorted(query.builders - known)
            if unknown:
                raise StreamArgumentError(f"no such builder {unknown[0]!r}")
        if query.build is not None:
            (name,) = query.builders
            buildid = conn.execute(
                sa.select(builds.c.id).join(builders, builders.c.id == builds.c.builderid)
                .where(builders.c.name == name, builds.c.number == query.build)).scalar()
            if buildid is None:
                raise StreamArgumentError(f"builder {name!r} has no build number "
                                          f"{query.build}")
            query.buildid = int(buildid)


def frame(ident: str, kind: str, data: dict[str, Any]) -> str:
    """One SSE event. JSON never holds a raw newline, so ``data`` is one line."""
    return f"id: {ident}\nevent: {kind}\ndata: {json.dumps(data, sort_keys=True)}\n\n"


class _Shared:
    """What the streams of one process and database share, so that a hundred clients
    cost about what one does: the newest :data:`RECENT_EVENTS` events of the outbox (read
    once, by whichever client needs them first) and the builder name and number of recent
    build ids (which never change)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: list[Any] = []  # outbox rows, oldest first
        self.start = -1  # the rows are every event with an id in (start, last]
        self.last = -1
        self.builds: OrderedDict[int, tuple[str, int] | None] = OrderedDict()

    def after(self, db: Database, after: int, newest: int, limit: int
              ) -> tuple[list[Any], int, bool] | None:
        """Up to ``limit`` rows after ``after`` from memory, the id the next read starts
        after, and whether more follow; None when ``after`` is older than what is held."""
        with self.lock:
            if newest > self.last:
                self._fill(db, newest)
            if after < self.start:
                return None
            i = bisect.bisect_right(self.rows, after, key=lambda r: int(r.id))
            rows = self.rows[i:i + limit]
            more = len(self.rows) > i + limit
            return rows, (int(rows[-1].id) if more else self.last), more

    def _fill(self, db: Database, newest: int) -> None:
        lower = self.last if self.last >= 0 else max(newest - RECENT_EVENTS, 0)
        if newest - lower > RECENT_EVENTS:  # a burst larger than what is held
            lower = newest - RECENT_EVENTS
            self.rows = []
        if not self.rows:
            self.start = lower
        while lower < newest:
            with db.read() as conn:
                rows = conn.execute(sa.select(events).where(events.c.id > lower,
                                                            events.c.id <= newest)
                                    .order_by(events.c.id).limit(PAGE * 5)).all()
            if not rows:
                break
            self.rows.extend(rows)
            lower = int(rows[-1].id)
        self.last = newest
        if len(self.rows) > 2 * RECENT_EVENTS:
            drop = len(self.rows) - RECENT_EVENTS
            self.start = int(self.rows[drop - 1].id)
            del self.rows[:drop]

    def build(self, db: Database, buildid: int) -> tuple[str, int] | None:
        with self.lock:
            if buildid in self.builds:
                self.builds.move_to_end(buildid)
                return self.builds[buildid]
        with db.read() as conn:
            row = conn.execute(sa.select(builders.c.name, builds.c.number)
                               .join(builders, builders.c.id == builds.c.builderid)
                               .where(builds.c.id == buildid)).first()
        found = (str(row.name), int(row.number)) if row else None
        with self.lock:
            self.builds[buildid] = found
            if len(self.builds) > _BUILD_CACHE:
                self.builds.popitem(last=False)
        return found


_shared: weakref.WeakKeyDictionary[Database, _Shared] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def _shared_for(db: Database) -> _Shared:
    with _shared_lock:
        found = _shared.get(db)
        if found is None:
            found = _shared[db] = _Shared()
        return found


def _kind_prefixes(kinds: frozenset[str]) -> tuple[str, ...]:
    return tuple(p for k in sorted(kinds) for p in KINDS[k])


def _event_builders(kind: str, payload: dict[str, Any]) -> set[str]:
    if isinstance(payload.get("builder"), str):
        return {payload["builder"]}
    if isinstance(payload.get("builders"), list):
        return {b for b in payload["builders"] if isinstance(b, str)}
    return set()


def _wanted(db: Database, query: StreamQuery, row: Any, prefixes: tuple[str, ...]
            ) -> tuple[int, str, dict[str, Any]] | None:
    """The event of an outbox row as the stream sends it, or None when the query does not
    want it. Its data is the payload with ``id``, ``kind`` and ``time``, plus ``builder``
    and ``build`` (the number) for the events that name only a build id."""
    kind = str(row.kind)
    if not kind.startswith(prefixes) or kind.startswith(INTERNAL_PREFIXES):
        return None
    try:
        payload = json.loads(row.payload)
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {"value": payload}
    buildid = payload.get("buildid")
    if query.buildid is not None and buildid != query.buildid:
        return None
    if isinstance(buildid, int) and ("builder" not in payload or "number" not in payload):
        found = _shared_for(db).build(db, buildid)
        if found is not None:
            payload.setdefault("builder", found[0])
            payload["build"] = found[1]
    elif isinstance(buildid, int) and isinstance(payload.get("number"), int):
        payload["build"] = payload["number"]
    if query.builders and not (_event_builders(kind, payload) & query.builders):
        return None
    return int(row.id), kind, {**payload, "id": int(row.id), "kind": kind,
                               "time": row.created_at}


def read_page(db: Database, query: StreamQuery, after: int, newest: int | None = None,
              limit: int = PAGE) -> tuple[list[tuple[int, str, dict[str, Any]]], int, bool]:
    """The events after ``after`` that ``query`` wants, from at most ``limit`` rows of the
    outbox, the id the next read starts after, and whether more rows follow at once.
    ``newest`` is the newest committed id when the caller knows it. Recent events come
    from the rows this process's streams share; a client further behind reads the outbox
    itself, a page per read transaction."""
    kinds = query.kinds - {"logs"}
    if not kinds:
        return [], after, False
    prefixes = ("",) if query.everything else _kind_prefixes(kinds)
    if newest is None or newest < 0:
        newest = latest_event_id(db)
    held = _shared_for(db).after(db, after, newest, limit)
    if held is not None:
        rows, last, more = held
    else:
        with db.read() as conn:
            rows = list(conn.execute(
                sa.select(events).where(events.c.id > after, events.c.id <= newest,
                                        sa.or_(*(events.c.kind.startswith(p, autoescape=True)
                                                 for p in prefixes)))
                .order_by(events.c.id).limit(limit)).all())
        more = len(rows) >= limit
        # every id up to ``newest`` is committed (ids become visible in order), so when
        # nothing more is wanted up to it the next read starts there
        last = int(rows[-1].id) if more else max(newest, after)
    out = [e for e in (_wanted(db, query, r, prefixes) for r in rows) if e is not None]
    return out, last, more


@dataclass
class _LogRow:
    id: int
    step_number: int
    step: str
    name: str
    num_chunks: int
    complete: bool


def _build_logs(db: Database, buildid: int) -> tuple[list[_LogRow], bool]:
    """The logs of a build, by id, and whether the build has finished (read together:
    when it says finished, every log is complete)."""
    with db.read() as conn:
        finished = conn.execute(sa.select(builds.c.finished_at)
                                .where(builds.c.id == buildid)).scalar() is not None
        rows = conn.execute(
            sa.select(logs.c.id, logs.c.name, logs.c.num_chunks, logs.c.complete,
                      steps.c.number, steps.c.name.label("step"))
            .join(steps, steps.c.id == logs.c.stepid)
            .where(steps.c.buildid == buildid).order_by(logs.c.id)).all()
    return [_LogRow(int(r.id), int(r.number), str(r.step), str(r.name), int(r.num_chunks),
                    bool(r.complete)) for r in rows], finished


def _log_frames(db: Database, query: StreamQuery, pos: Position, rows: list[_LogRow]
                ) -> Iterator[str]:
    """``log.started``, ``log.chunk`` and ``log.finished`` for what is new in the logs,
    advancing ``pos`` as each is produced."""
    (builder,) = query.builders
    for log in rows:
        if log.id <= pos.logs_done or log.id in pos.finished:
            continue
        base = {"builder": builder, "build": query.build, "step": log.step,
                "step_number": log.step_number, "log": log.name, "logid": log.id}
        if log.id not in pos.logs:
            pos.logs[log.id] = -1
            yield frame(pos.text(True), "log.started", base)
        last = log.num_chunks - 1
        if last > pos.logs[log.id]:
            for chunk in logstream.iter_chunks(db, log.id, after=pos.logs[log.id]):
                pos.logs[log.id] = chunk.seq
                yield frame(pos.text(True), "log.chunk", {
                    **base, "seq": chunk.seq, "text": chunk.text,
                    "stream": logstream.STREAM_NAMES.get(chunk.stream, "stdout")})
                if chunk.seq >= last:
                    break  # written since the logs were read: the next round sends it
        if log.complete and pos.logs[log.id] >= last:
            del pos.logs[log.id]
            pos.finished.add(log.id)
            _compact(pos, rows)
            yield frame(pos.text(True), "log.finished", base)


def _compact(pos: Position, rows: list[_LogRow]) -> None:
    """Move ``logs_done`` over every leading log whose ``log.finished`` was sent."""
    for log in rows:
        if log.id <= pos.logs_done:
            continue
        if log.id not in pos.finished:
            break
        pos.logs_done = log.id
        pos.finished.discard(log.id)


def position_in(conn: Connection) -> Position:
    """:func:`page_position` of a page without a build, read inside the page's own
    transaction (its first statement): one connection for the whole page."""
    return Position(event_id_in(conn))


def page_position(db: Database, buildid: int | None = None) -> Position:
    """Where a page rendered now starts following the stream: after the newest event
    (read before the page's own data, so nothing falls between) and, for a build, after
    the leading logs that are already complete (a page links to those; it shows only what
    running steps write)."""
    pos = Position(latest_event_id(db))
    if buildid is not None:
        rows, _finished = _build_logs(db, buildid)
        for r in rows:
            if not r.complete:
                break
            pos.logs_done = r.id
    return pos


def at_end(db: Database, query: StreamQuery, pos: Position) -> bool:
    """Whether a build stream has nothing more to send: the build finished, its events and
    every chunk of its logs were sent."""
    if query.buildid is None:
        return False
    rows, finished = _build_logs(db, query.buildid)
    if not finished:
        return False
    if query.follows_logs and any(r.id > pos.logs_done for r in rows):
        return False
    return not _events_wanted_after(db, query, pos.event)


def _events_wanted_after(db: Database, query: StreamQuery, after: int) -> bool:
    """Whether the outbox holds an event after ``after`` that ``query`` wants."""
    while True:
        page, after, more = read_page(db, query, after)
        if page:
            return True
        if not more:
            return False


def stream(db: Database, query: StreamQuery, pos: Position,
           max_seconds: float | None = None, heartbeat: float | None = None,
           gone: threading.Event | None = None) -> Iterator[str]:
    """The SSE text of the stream from ``pos`` on: every event the query wants, then new
    ones as they are committed, a comment line after ``heartbeat`` seconds of quiet, until
    ``max_seconds`` pass (or, for one build, until it finished and all was sent: then an
    ``end`` event), or until ``gone`` is set (the client went away: whoever sets it calls
    :func:`bbweb.status.eventwait.wake`). Ending the iteration early leaves nothing
    behind."""
    max_seconds = STREAM_MAX_SECONDS if max_seconds is None else max_seconds
    heartbeat = HEARTBEAT_SECONDS if heartbeat is None else heartbeat
    with_logs = query.follows_logs
    deadline = time.monotonic() + max_seconds
    newest: int | None = None
    yield f"retry: {RETRY_MS}\n: bbweb live status stream\n\n"
    quiet_since = time.monotonic()
    while True:
        sent = False
        while True:  # the outbox, a page at a time
            page, last, more = read_page(db, query, pos.event, newest)
            for ident, kind, data in page:
                pos.event = ident
                sent = True
                yield frame(pos.text(with_logs), kind, data)
            pos.event = max(pos.event, last)
            if not more:
                break
        finished = False
        if query.buildid is not None:
            rows, finished = _build_logs(db, query.buildid)
            if with_logs:
                for text in _log_frames(db, query, pos, rows):
                    sent = True
                    yield text
            if finished and (not with_logs or all(r.id <= pos.logs_done for r in rows)):
                # events written with the build's end are in the outbox already
                if not _events_wanted_after(db, query, pos.event):
                    yield frame(pos.text(with_logs), "end", {"builder": next(
                        iter(query.builders)), "build": query.build})
                    return
                newest = None  # read the newest id afresh: the events are there
                continue
        now = time.monotonic()
        if sent:
            quiet_since = now
        elif now - quiet_since >= heartbeat:
            yield ": keepalive\n\n"
            quiet_since = now
        if now >= deadline:
            return
        wait = min(heartbeat - (now - quiet_since), deadline - now)
        if query.buildid is not None and with_logs:
            wait = min(wait, LOG_POLL_SECONDS)
        newest = wait_for_events(db, pos.event, max(wait, 0.0), gone)
        if gone is not None and gone.is_set():
            return


__all__ = ["HEARTBEAT_SECONDS", "KINDS", "PAGE", "Position", "STREAM_MAX_SECONDS",
           "StreamArgumentError", "StreamQuery", "at_end", "frame", "page_position", "parse_query",
           "read_page", "resolve", "stream"]
