"""The master's side of the worker protocol (``/api/worker``), below HTTP.

Every request a worker makes may reach the master twice: the worker repeats a request whose
answer it did not get (a reset connection, a proxy's 502, a timeout), without knowing
whether the master acted on it. So:

* Each request carries an ``Idempotency-Key`` (the same on every repeat). What the master
  answered is stored in the transaction that acted (:data:`~bbweb.db.schema.worker_requests`),
  the answer serialised *before* the commit; a repeat is answered with the stored answer
  and changes nothing. Step transitions, log appends, step results and claims are thereby
  done exactly once.
* A claim is a lease on a build request: it names the request and runs out after
  :func:`lease_seconds` unless the worker confirms it (``confirm``), which starts the build.
  A claim whose answer never arrives leaves nothing behind but a lease that runs out.
* A worker process makes a random session id at start-up and says ``hello`` with the
  builds it runs (none, after a restart): every other unfinished build the master thinks
  it holds is ended at once as EXCEPTION ("slave lost") and its request queued again. Its
  heartbeats list the builds it runs and the number of its last settled claim; a build it
  confirmed with a claim up to that number and no longer lists is ended the same way.

The functions here open their own transactions and return an :class:`Answer` (status and
JSON text) for the web layer to send as it is.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bbweb.db import wakeup
from bbweb.db.connection import Database
from bbweb.db.schema import builders, builds, master_state, slaves, steps, worker_requests
from bbweb.engine import actions_slaves
from bbweb.engine import builds as ebuilds
from bbweb.engine import slaves as eslaves
from bbweb.engine.actions import CLEAN_SHUTDOWN
from bbweb.mastercfg.master import MasterConfig
from bbweb.values.validation import MAX_CARRIED_DEPTH, depth
from bbweb.worker.logframes import Frame

log = logging.getLogger("bbweb.worker_api")

MAX_CLAIM_WAIT = 30.0  # the longest long-poll a worker may ask for
# A waiting long-poll looks for work when woken (:mod:`bbweb.db.wakeup`: a build request,
# a worker paused or pinged, anything that records an event); should a wake-up be lost, the
# worker's next claim looks (an idle bbweb worker claims every 20 s), so the fallback is no
# shorter than a claim. A worker that hung up is noticed at the next wake-up or the end of
# its wait, whichever comes first, and is never given a build.
CLAIM_RECHECK = MAX_CLAIM_WAIT
POLL_AFTER = 1.0  # when the master cannot afford to wait: poll again after this long
DEFAULT_LEASE = 10.0  # seconds a worker has to confirm a claim
LEASE_VAR = "BBWEB_CLAIM_LEASE"
POLL_AFTER_HEADER = "X-Poll-After"  # on a 204: seconds before the worker claims again
REPLAY_KEEP = 900.0  # seconds an answer is kept for repeats (workers retry for 120)
MAX_KEY_LENGTH = 64
# What this master takes beyond the calls every version has, announced in the hello answer
# so that a worker uses it only with a master that does (an older master would ignore an
# unknown field, and output carried in it would be lost): "finish-log", a step's last
# output carried by its ``finish`` call.
FEATURES = ("finish-log",)
# Long-polls that may wait at once in one serving process when its thread count is not
# known; when it is, at most half of the threads but one (pages keep the rest).
DEFAULT_MAX_LONG_POLLS = 4
MAX_LONG_POLLS_VAR = "BBWEB_MAX_LONG_POLLS"


class ProtocolError(Exception):
    """A request the master refuses (its HTTP status and a message for the worker)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Answer:
    """What to send back: an HTTP status, the JSON text (empty for 204) and extra headers
    (never stored for repeats: only idle claim answers have any)."""

    status: int
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Answer:
        return cls(status, json.dumps(data, separators=(",", ":")))

    @classmethod
    def error(cls, exc: ProtocolError) -> Answer:
        return cls.json({"error": exc.message}, exc.status)


NO_CONTENT = Answer(204)


def lease_seconds() -> float:
    """How long a claim waits for the worker's confirmation: ``BBWEB_CLAIM_LEASE`` seconds
    in the master's environment, 10 by default (at least 1)."""
    raw = os.environ.get(LEASE_VAR, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_LEASE
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %g", LEASE_VAR, raw,
                    DEFAULT_LEASE)
        value = DEFAULT_LEASE
    return max(value, 1.0)


# -- answers kept for repeats ----------------------------------------------------------------

def _replayed(conn: Connection, sid: int, key: str, path: str) -> Answer | None:
    row = conn.execute(sa.select(worker_requests.c.path, worker_requests.c.status,
                                 worker_requests.c.body)
                       .where(worker_requests.c.slaveid == sid,
                              worker_requests.c.request_key == key)).first()
    if row is None:
        return None
    if row.path != path:
        raise ProtocolError(422, f"Idempotency-Key {key!r} was already used for {row.path}")
    return Answer(row.status, row.body)


def _remember(conn: Connection, sid: int, key: str, path: str, answer: Answer,
              now: float) -> None:
    conn.execute(worker_requests.insert().values(slaveid=sid, request_key=key, path=path,
                                                 created_at=now, status=answer.status,
                                                 body=answer.body))


def prune_answers(conn: Connection, now: float | None = None) -> int:
    """Forget answers older than :data:`REPLAY_KEEP` (no worker repeats that late)."""
    now = time.time() if now is None else now
    return int(conn.execute(worker_requests.delete().where(
        worker_requests.c.created_at < now - REPLAY_KEEP)).rowcount or 0)


def _once(db: Database, name: str, key: str | None, path: str,
          act: Callable[[Connection, int], Answer | None],
          touch: bool = True) -> Answer | None:
    """Run ``act`` in one write transaction, exactly once per ``key``: a repeat gets the
    stored answer. ``act`` returns None for "nothing happened" (not stored). Two copies of
    one request racing on PostgreSQL: the second blocks on the unique key until the first
    commits, fails, and is answered from what the first stored."""
    for attempt in (1, 2):
        try:
            with db.write() as conn:
                sid = eslaves.heartbeat(conn, name) if touch else eslaves.ensure_slave(conn,
                                                                                    name)
                if key:
                    prior = _replayed(conn, sid, key, path)
                    if prior is not None:
                        log.info("worker %s repeated %s; answered as the first time",
                                 name, path)
                        return prior
                answer = act(conn, sid)
                if answer is not None and key:
                    _remember(conn, sid, key, path, answer, time.time())
                return answer
        except IntegrityError:
            if attempt == 2 or not key:
                raise
    raise AssertionError("unreachable")


def _acted(db: Database, name: str, key: str | None, path: str,
           act: Callable[[Connection, int], Answer], touch: bool = True) -> Answer:
    try:
        answer = _once(db, name, key, path, act, touch)
    except ProtocolError as exc:
        return Answer.error(exc)
    assert answer is not None
    return answer


# -- reconciling what the worker runs with what the master thinks it runs ----------------------

def _forget(conn: Connection, cfg: MasterConfig, sid: int, name: str, build_ids: list[int],
            why: str) -> list[int]:
    ended = ebuilds.abandon_builds_of_slave(conn, cfg, sid, only=build_ids)
    if ended:
        log.warning("worker %s %s: build(s) %s ended as EXCEPTION (slave lost), their "
                    "requests queued again", name, why, ", ".join(map(str, ended)))
    return ended


def _unfinished(conn: Connection, sid: int) -> Any:
    return sa.select(builds.c.id).where(builds.c.slaveid == sid,
                                        builds.c.finished_at.is_(None))


def hello(db: Database, cfg: MasterConfig, name: str, key: str | None, info: dict[str, Any],
          session: str | None, running: list[int] | None) -> Answer:
    """A worker process starts (or reconnects). With ``running`` (what the worker runs),
    every other build the master thinks it holds is forgotten by the worker: it ends now,
    and the worker's unconfirmed leases go back to the queue."""

    def act(conn: Connection, sid: int) -> Answer:
        sid = eslaves.slave_connected(conn, name, info)
        actions_slaves.clear_graceful(conn, sid)
        ended: list[int] = []
        if running is not None:
            keep = set(running)
            forgotten = [r.id for r in conn.execute(_unfinished(conn, sid))
                         if r.id not in keep]
            ended = _forget(conn, cfg, sid, name, forgotten, "restarted")
            ebuilds.release_leases_of_slave(conn, sid)
        if session:
            conn.execute(slaves.update().where(slaves.c.id == sid).values(session=session))
        return Answer.json({"builders": cfg.builders_for_slave(name),
                            "heartbeat_interval": eslaves.heartbeat_interval(cfg, name),
                            "heartbeat_timeout": eslaves.heartbeat_timeout(cfg, name),
                            "lease": lease_seconds(), "ended": ended,
                            "features": list(FEATURES)})

    return _acted(db, name, key, "/hello", act, touch=False)


def heartbeat(db: Database, cfg: MasterConfig, name: str, session: str | None,
              running: list[int], settled: int | None) -> Answer:
    """The worker is alive and runs ``running``. Its builds confirmed in this session by a
    claim numbered up to ``settled`` that it does not list have been forgotten: they end.
    (A build confirmed by a later claim may not be in the list yet.) Answers the commands
    waiting for the worker: stop requests, a ping."""

    def act(conn: Connection, sid: int) -> Answer:
        if session and settled is not None:
            keep = set(running)
            forgotten = [r.id for r in conn.execute(_unfinished(conn, sid).where(
                builds.c.worker_session == session, builds.c.worker_seq <= settled))
                if r.id not in keep]
            _forget(conn, cfg, sid, name, forgotten, "no longer runs what it claimed")
        rows = conn.execute(sa.select(builds.c.id, builds.c.stop_requested).where(
            builds.c.slaveid == sid, builds.c.finished_at.is_(None),
            builds.c.stop_requested.isnot(None))).all()
        commands: list[dict[str, Any]] = [
            {"type": "stop", "build_id": r.id, "reason": r.stop_requested} for r in rows]
        ping = actions_slaves.pending_ping(conn, sid)
        if ping is not None:
            commands.append({"type": "ping", "token": ping})
        return Answer.json({"commands": commands})

    return _acted(db, name, None, "/heartbeat", act)


def pong(db: Database, name: str, key: str | None, token: float) -> Answer:
    def act(conn: Connection, sid: int) -> Answer:
        return Answer.json({"answered": actions_slaves.answer_ping(conn, sid, name, token)})

    return _acted(db, name, key, "/pong", act)


def goodbye(db: Database, cfg: MasterConfig, name: str, key: str | None) -> Answer:
    """The worker is leaving: what it was building goes back to the queue now rather than
    after the heartbeat timeout."""

    def act(conn: Connection, sid: int) -> Answer:
        abandoned = ebuilds.abandon_builds_of_slave(conn, cfg, sid)
        ebuilds.release_leases_of_slave(conn, sid)
        eslaves.mark_disconnected(conn, sid, name)
        if abandoned:
            log.info("worker %s left during build(s) %s; their requests are queued again",
                     name, abandoned)
        return Answer.json({"abandoned": abandoned})

    return _acted(db, name, key, "/goodbye", act, touch=False)


# -- claiming --------------------------------------------------------------------------------

class LongPollGate:
    """Counts the long-polls waiting in this process, so that they never hold every
    thread that pages need."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting = 0

    @contextmanager
    def slot(self, limit: int) -> Iterator[bool]:
        """Yields whether this long-poll may wait (fewer than ``limit`` already do)."""
        with self._lock:
            allowed = self._waiting < limit
            if allowed:
                self._waiting += 1
        try:
            yield allowed
        finally:
            if allowed:
                with self._lock:
                    self._waiting -= 1


LONG_POLLS = LongPollGate()


def long_poll_limit(multithreaded: bool, threads: int | None) -> int:
    """How many long-polls may wait at once in a serving process: none when it serves one
    request at a time (a sync worker class: a waiting long-poll would make every page wait
    for it); with ``threads`` known, at most half of them but one; otherwise
    ``BBWEB_MAX_LONG_POLLS`` (4)."""
    if not multithreaded:
        return 0
    raw = os.environ.get(MAX_LONG_POLLS_VAR, "")
    limit = int(raw) if raw.strip().isdigit() else DEFAULT_MAX_LONG_POLLS
    if threads is not None:
        limit = min(limit, max(threads - 1, 0) // 2)
    return limit


def _worker_state(conn: Connection, sid: int) -> Any:
    return conn.execute(sa.select(slaves.c.paused, slaves.c.graceful,
                                  slaves.c.ping_requested_at, slaves.c.ping_answered_at)
                        .where(slaves.c.id == sid)).one()


def _stopping(conn: Connection) -> bool:
    return conn.execute(sa.select(master_state.c.name).where(
        master_state.c.name == CLEAN_SHUTDOWN)).first() is not None


def claim(db: Database, cfg: MasterConfig, name: str, key: str | None, *, wait: float,
          seq: int | None, client_gone: Callable[[], bool] = lambda: False,
          poll_after: float | None = None) -> Answer:
    """Wait up to ``wait`` seconds for work the worker may take, and lease it.

    Answers ``{"lease": {"request": id, "expires_in": s}}`` (confirm it with
    :func:`confirm`), ``{"shutdown": true}`` (asked to shut down gracefully, and idle),
    ``{"commands": [...]}`` (a ping to answer), or 204 when the wait ran out — with
    ``poll_after``, a 204 whose ``X-Poll-After`` header says to poll again after that
    many seconds (the master could not afford to wait). A worker that sends no ``seq``
    (one from before leases) gets ``{"build": ...}``, leased and confirmed at once.
    """
    path = "/claim"
    try:
        with db.write() as conn:
            sid = eslaves.heartbeat(conn, name)
            prior = _replayed(conn, sid, key, path) if key else None
            names = cfg.builders_for_slave(name)
            ids = [r.id for r in conn.execute(sa.select(builders.c.id)
                                              .where(builders.c.name.in_(names)))]
    except ProtocolError as exc:
        return Answer.error(exc)
    if prior is not None:
        log.info("worker %s repeated a claim; answered as the first time", name)
        return prior
    deadline = time.monotonic() + wait

    def take(conn: Connection, sid_: int) -> Answer | None:
        if seq is None:
            claimed = ebuilds.claim_build_request(conn, cfg, name, sid_)
            if claimed is None:
                return None
            log.info("worker %s claimed %s #%d", name, claimed.builder, claimed.number)
            return Answer.json({"build": claimed.as_json()})
        lease = lease_seconds()
        brid = ebuilds.lease_build_request(conn, cfg, name, sid_, lease)
        if brid is None:
            return None
        log.info("worker %s leased build request %d", name, brid)
        return Answer.json({"build": None, "lease": {"request": brid, "expires_in": lease}})

    while True:
        # noted before looking: work committed after the look wakes the wait below
        generation = db.wakeups.generation(wakeup.EVENTS)
        if client_gone():
            return NO_CONTENT
        with db.read() as conn:
            state = _worker_state(conn, sid)
            pending = not (state.paused or state.graceful or _stopping(conn)) and \
                ebuilds.has_pending_work(conn, ids)
        if state.graceful:
            # asked to shut down gracefully, and idle (it is claiming): tell it to go
            log.info("worker %s is told to shut down gracefully", name)
            return Answer.json({"build": None, "shutdown": True})
        if state.ping_requested_at is not None and state.ping_answered_at is None:
            return Answer.json({"build": None, "commands": [
                {"type": "ping", "token": state.ping_requested_at}]})
        if pending:
            try:
                answer = _once(db, name, key, path, take)
            except ProtocolError as exc:
                return Answer.error(exc)
            if answer is not None:
                return answer
        if time.monotonic() >= deadline:
            if poll_after is not None:
                return Answer(204, headers=((POLL_AFTER_HEADER, f"{poll_after:g}"),))
            return NO_CONTENT
        db.wakeups.wait(wakeup.EVENTS, generation,
                        min(wakeup.fallback(CLAIM_RECHECK), max(deadline - time.monotonic(), 0)))


def confirm(db: Database, cfg: MasterConfig, name: str, key: str | None, brid: int,
            session: str | None, seq: int | None, first_step: bool = False) -> Answer:
    """The worker received its lease on request ``brid``: start the build and hand it
    over. 409 when the lease is no longer the worker's. With ``first_step``, the build's
    first step is started in the same transaction and answered too (``"step"``: what
    ``next_step`` would answer), which saves the worker a round trip before it can start."""

    def act(conn: Connection, sid: int) -> Answer:
        claimed = ebuilds.start_leased_build(conn, cfg, brid, name, sid, session, seq)
        if claimed is None:
            raise ProtocolError(409, f"build request {brid} is not leased to worker {name} "
                                "(the lease ran out and the request was claimed again, "
                                "or it was finished)")
        log.info("worker %s confirmed %s #%d", name, claimed.builder, claimed.number)
        if not first_step:
            return Answer.json({"build": claimed.as_json()})
        return Answer.json({"build": claimed.as_json(),
                            "step": ebuilds.next_step(conn, cfg, claimed.buildid)})

    return _acted(db, name, key, f"/leases/{brid}/confirm", act)


# -- running a build -------------------------------------------------------------------------

def _own_build(conn: Connection, name: str, buildid: int) -> Any:
    return conn.execute(sa.select(builds).join(slaves, slaves.c.id == builds.c.slaveid).where(
        builds.c.id == buildid, slaves.c.name == name)).first()


def _own_step(conn: Connection, name: str, stepid: int) -> Any:
    return conn.execute(
        sa.select(steps.c.id, steps.c.finished_at, builds.c.id.label("buildid"),
                  builds.c.stop_requested)
        .join(builds, builds.c.id == steps.c.buildid)
        .join(slaves, slaves.c.id == builds.c.slaveid)
        .where(steps.c.id == stepid, slaves.c.name == name)).first()


def next_step(db: Database, cfg: MasterConfig, name: str, key: str | None,
              buildid: int) -> Answer:
    """The step the worker runs next (and the previous one, if still running, is lost:
    the worker asked anew, so it no longer runs it), or null when the build is over."""

    def act(conn: Connection, sid: int) -> Answer:
        if _own_build(conn, name, buildid) is None:
            raise ProtocolError(404, f"build {buildid} is not assigned to worker {name}")
        return Answer.json({"step": ebuilds.next_step(conn, cfg, buildid)})

    return _acted(db, name, key, f"/builds/{buildid}/next_step", act)


def append_log(db: Database, cfg: MasterConfig, name: str, key: str | None, stepid: int,
               logname: str, chunks: list[tuple[str, str]],
               frames: list[Frame] | None = None) -> Answer:
    """Append output to a running step's log (``chunks`` of text, or ``frames`` a worker
    compressed); answers whether a stop was requested."""

    def act(conn: Connection, sid: int) -> Answer:
        row = _own_step(conn, name, stepid)
        if row is None:
            raise ProtocolError(404, f"step {stepid} is not running on worker {name}")
        if row.finished_at is not None:
            raise ProtocolError(409, f"step {stepid} has already finished")
        try:
            if frames is not None:
                ebuilds.append_step_frames(conn, cfg, stepid, logname, frames)
            else:
                ebuilds.append_step_log(conn, cfg, stepid, logname, chunks)
        except ValueError as exc:
            raise ProtocolError(400, str(exc)) from None
        return Answer.json({"stop": row.stop_requested is not None})

    return _acted(db, name, key, f"/steps/{stepid}/log", act)


def finish_step(db: Database, cfg: MasterConfig, name: str, key: str | None, stepid: int,
                rc: int | None, interrupted: str | None, properties: dict[str, Any],
                error: str | None, *, frames: list[Frame] | None = None,
                logname: str = "stdio", then_next: bool = False) -> Answer:
    """Record how the step's command ended; answers whether a stop was requested.

    The worker may save two round trips per step: ``frames`` is its last output for the
    log ``logname``, appended first exactly as ``append_log`` would (a step already
    finished refuses it with 409 likewise); with ``then_next``, the step that runs next
    is started as :func:`next_step` would start it (or the build finishes) and answered
    as ``"step"``. All of it is one transaction, kept for repeats as one answer."""
    for prop, value in properties.items():
        if depth(value, MAX_CARRIED_DEPTH) > MAX_CARRIED_DEPTH:
            return Answer.error(ProtocolError(
                400, f"property {prop!r} nests more than {MAX_CARRIED_DEPTH} levels deep"))

    def act(conn: Connection, sid: int) -> Answer:
        row = _own_step(conn, name, stepid)
        if row is None:
            raise ProtocolError(404, f"step {stepid} is not running on worker {name}")
        if frames:
            if row.finished_at is not None:
                raise ProtocolError(409, f"step {stepid} has already finished")
            try:
                ebuilds.append_step_frames(conn, cfg, stepid, logname, frames)
            except ValueError as exc:
                raise ProtocolError(400, str(exc)) from None
        ebuilds.finish_step(conn, cfg, stepid, rc, interrupted, properties, error)
        if not then_next:
            return Answer.json({"stop": row.stop_requested is not None})
        return Answer.json({"stop": row.stop_requested is not None,
                            "step": ebuilds.next_step(conn, cfg, row.buildid)})

    return _acted(db, name, key, f"/steps/{stepid}/finish", act)
