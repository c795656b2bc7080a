"""``/api/worker``: the HTTP protocol between workers and the master.

Workers authenticate with HTTP Basic (their BuildSlave name and password), long-poll for
work, and report step output and results. Every call is stateless on this side; any web
process can serve any worker.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import time
from functools import wraps
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, g, jsonify, request

from bbweb.app import site
from bbweb.db.schema import builders, builds, master_state, slaves, steps
from bbweb.engine import actions_slaves
from bbweb.engine import builds as engine_builds
from bbweb.engine import slaves as engine_slaves
from bbweb.engine.actions import CLEAN_SHUTDOWN

bp = Blueprint("worker_api", __name__)
log = logging.getLogger("bbweb.worker_api")

MAX_CLAIM_WAIT = 30.0
CLAIM_POLL_INTERVAL = 0.25


def _error(status: int, message: str) -> Response:
    resp = jsonify({"error": message})
    resp.status_code = status
    return resp


def worker_auth(view):  # type: ignore[no-untyped-def]
    """Require a configured worker's name and password (HTTP Basic)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        auth = request.authorization
        cfg = site().config
        if auth is None or auth.type != "basic" or not engine_slaves.check_password(
                cfg, auth.username or "", auth.password or ""):
            log.warning("worker authentication failed for %r from %s",
                        auth.username if auth else None, request.remote_addr)
            resp = _error(401, "worker name or password is wrong")
            resp.headers["WWW-Authenticate"] = 'Basic realm="bbweb workers"'
            return resp
        g.worker_name = auth.username
        return view(*args, **kwargs)

    return wrapper


def _client_gone() -> bool:
    """True when the worker has closed its long-poll connection (it stopped, or gave up
    waiting), so we must not claim a build on its behalf. Only gunicorn exposes the
    socket; elsewhere (and over TLS, where peeking is not possible) we assume it is
    still there."""
    sock = request.environ.get("gunicorn.socket")
    if sock is None or isinstance(sock, ssl.SSLSocket):
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


@bp.post("/hello")
@worker_auth
def hello() -> Any:
    info = _body().get("info") or {}
    if not isinstance(info, dict):
        return _error(400, "info must be an object")
    s = site()
    with s.db.write() as conn:
        sid = engine_slaves.slave_connected(conn, g.worker_name, info)
        actions_slaves.clear_graceful(conn, sid)
    return jsonify({"builders": s.config.builders_for_slave(g.worker_name),
                    "heartbeat_interval": engine_slaves.heartbeat_interval(s.config,
                                                                           g.worker_name)})


@bp.post("/heartbeat")
@worker_auth
def heartbeat() -> Any:
    s = site()
    with s.db.write() as conn:
        sid = engine_slaves.heartbeat(conn, g.worker_name)
        rows = conn.execute(sa.select(builds.c.id, builds.c.stop_requested).where(
            builds.c.slaveid == sid, builds.c.finished_at.is_(None),
            builds.c.stop_requested.isnot(None))).all()
        ping = actions_slaves.pending_ping(conn, sid)
    commands = [{"type": "stop", "build_id": r.id, "reason": r.stop_requested} for r in rows]
    if ping is not None:
        commands.append({"type": "ping", "token": ping})
    return jsonify({"commands": commands})


@bp.post("/pong")
@worker_auth
def pong() -> Any:
    """The worker's answer to a ping it was handed (by a heartbeat or a claim)."""
    token = _body().get("token")
    if not isinstance(token, int | float) or isinstance(token, bool):
        return _error(400, "token must be the number the ping command carried")
    s = site()
    with s.db.write() as conn:
        sid = engine_slaves.slave_id(conn, g.worker_name)
        answered = sid is not None and actions_slaves.answer_ping(conn, sid, g.worker_name,
                                                                  float(token))
    return jsonify({"answered": answered})


@bp.post("/goodbye")
@worker_auth
def goodbye() -> Any:
    """The worker is leaving: what it was building goes back to the queue now rather than
    after the heartbeat timeout."""
    s = site()
    with s.db.write() as conn:
        sid = engine_slaves.slave_id(conn, g.worker_name)
        if sid is None:
            return jsonify({"abandoned": []})
        abandoned = engine_builds.abandon_builds_of_slave(conn, s.config, sid)
        engine_slaves.mark_disconnected(conn, sid, g.worker_name)
    if abandoned:
        log.info("worker %s left during build(s) %s; their requests are queued again",
                 g.worker_name, abandoned)
    return jsonify({"abandoned": abandoned})


@bp.post("/claim")
@worker_auth
def claim() -> Any:
    s = site()
    try:
        wait = min(max(float(_body().get("wait", 0) or 0), 0.0), MAX_CLAIM_WAIT)
    except (TypeError, ValueError):
        return _error(400, "wait must be a number of seconds")
    deadline = time.monotonic() + wait
    name = g.worker_name
    names = s.config.builders_for_slave(name)
    with s.db.write() as conn:
        sid = engine_slaves.heartbeat(conn, name)
        ids = [r.id for r in conn.execute(sa.select(builders.c.id)
                                          .where(builders.c.name.in_(names)))]
    while True:
        if _client_gone():
            return Response(status=204)
        with s.db.read() as conn:
            state = conn.execute(sa.select(slaves.c.paused, slaves.c.graceful,
                                           slaves.c.ping_requested_at,
                                           slaves.c.ping_answered_at)
                                 .where(slaves.c.id == sid)).one()
            stopping = conn.execute(sa.select(master_state.c.name).where(
                master_state.c.name == CLEAN_SHUTDOWN)).first() is not None
            pending = not (state.paused or state.graceful or stopping) and \
                engine_builds.has_pending_work(conn, ids)
        if state.graceful:
            # asked to shut down gracefully, and idle (it is claiming): tell it to go
            log.info("worker %s is told to shut down gracefully", name)
            return jsonify({"build": None, "shutdown": True})
        if state.ping_requested_at is not None and state.ping_answered_at is None:
            return jsonify({"build": None, "commands": [
                {"type": "ping", "token": state.ping_requested_at}]})
        if pending:
            with s.db.write() as conn:
                claimed = engine_builds.claim_build_request(conn, s.config, name, sid)
            if claimed is not None:
                log.info("worker %s claimed %s #%d", name, claimed.builder, claimed.number)
                return jsonify({"build": claimed.as_json()})
        if time.monotonic() >= deadline:
            return Response(status=204)
        time.sleep(min(CLAIM_POLL_INTERVAL, max(deadline - time.monotonic(), 0)))


def _own_build(conn: Any, buildid: int) -> Any:
    return conn.execute(sa.select(builds).join(slaves, slaves.c.id == builds.c.slaveid).where(
        builds.c.id == buildid, slaves.c.name == g.worker_name)).first()


def _own_step(conn: Any, stepid: int) -> Any:
    return conn.execute(
        sa.select(steps.c.id, steps.c.finished_at, builds.c.id.label("buildid"),
                  builds.c.stop_requested)
        .join(builds, builds.c.id == steps.c.buildid)
        .join(slaves, slaves.c.id == builds.c.slaveid)
        .where(steps.c.id == stepid, slaves.c.name == g.worker_name)).first()


@bp.post("/builds/<int:buildid>/next_step")
@worker_auth
def next_step(buildid: int) -> Any:
    s = site()
    with s.db.write() as conn:
        if _own_build(conn, buildid) is None:
            return _error(404, f"build {buildid} is not assigned to worker {g.worker_name}")
        spec = engine_builds.next_step(conn, s.config, buildid)
    return jsonify({"step": spec})


@bp.post("/steps/<int:stepid>/log")
@worker_auth
def step_log(stepid: int) -> Any:
    s = site()
    body = _body()
    logname = body.get("log", "stdio")
    chunks = body.get("chunks")
    if not isinstance(logname, str) or not logname or len(logname) > 255:
        return _error(400, "log must be a log name")
    if not isinstance(chunks, list) or not all(
            isinstance(c, list | tuple) and len(c) == 2 and isinstance(c[1], str)
            for c in chunks):
        return _error(400, "chunks must be a list of [stream, text] pairs")
    with s.db.write() as conn:
        row = _own_step(conn, stepid)
        if row is None:
            return _error(404, f"step {stepid} is not running on worker {g.worker_name}")
        if row.finished_at is not None:
            return _error(409, f"step {stepid} has already finished")
        try:
            engine_builds.append_step_log(conn, s.config, stepid, logname,
                                          [(c[0], c[1]) for c in chunks])
        except ValueError as exc:
            return _error(400, str(exc))
    return jsonify({"stop": row.stop_requested is not None})


@bp.post("/steps/<int:stepid>/finish")
@worker_auth
def step_finish(stepid: int) -> Any:
    s = site()
    body = _body()
    rc = body.get("rc")
    interrupted = body.get("interrupted")
    props = body.get("properties") or {}
    error = body.get("error")
    if rc is not None and not isinstance(rc, int):
        return _error(400, "rc must be an integer or null")
    if interrupted not in (None, "timeout", "stopped", "error"):
        return _error(400, "interrupted must be null, timeout, stopped or error")
    if not isinstance(props, dict):
        return _error(400, "properties must be an object")
    with s.db.write() as conn:
        row = _own_step(conn, stepid)
        if row is None:
            return _error(404, f"step {stepid} is not running on worker {g.worker_name}")
        engine_builds.finish_step(conn, s.config, stepid, rc, interrupted, props,
                                  error if isinstance(error, str) else None)
    return jsonify({"stop": row.stop_requested is not None})
