"""``/api/worker``: the HTTP protocol between workers and the master.

Workers authenticate with HTTP Basic (their BuildSlave name and password). This module
only checks credentials and bodies and translates to HTTP; what each call does, and how a
repeated call is recognised (the ``Idempotency-Key`` header), is
:mod:`bbweb.engine.worker_protocol`. Every call is stateless on this side; any web process
can serve any worker.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures.thread
import io
import logging
import select
import socket
import ssl
import threading
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec

from flask import Blueprint, Response, g, request

from bbweb.engine import slaves as engine_slaves
from bbweb.engine import worker_protocol as protocol
from bbweb.engine.worker_protocol import Answer, ProtocolError
from bbweb.plugins.site import site
from bbweb.worker import logframes

P = ParamSpec("P")

bp = Blueprint("worker_api", __name__)
log = logging.getLogger("bbweb.worker_api")

MAX_CLAIM_WAIT = protocol.MAX_CLAIM_WAIT
# The largest compressed log body (a worker sends at most 512 KiB of zlib data per request).
MAX_LOG_BODY = 32 * 1024 * 1024


def _send(answer: Answer) -> Response:
    if answer.status == 204:
        resp = Response(status=204)
    else:
        resp = Response(answer.body, status=answer.status, mimetype="application/json")
    for name, value in answer.headers:
        resp.headers[name] = value
    return resp


def _error(status: int, message: str) -> Response:
    return _send(Answer.error(ProtocolError(status, message)))


def worker_auth(view: Callable[P, Response]) -> Callable[P, Response]:
    """Require a configured worker's name and password (HTTP Basic)."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
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
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > protocol.MAX_KEY_LENGTH or not key.isprintable():
            return _error(400, "Idempotency-Key must be at most "
                          f"{protocol.MAX_KEY_LENGTH} printable characters")
        g.request_key = key or None
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


def _serving_threads() -> int | None:
    """The size of the thread pool serving this request, when it is a standard
    ThreadPoolExecutor (gunicorn's gthread worker class); None when unknown."""
    thread = threading.current_thread()
    if getattr(thread, "_target", None) is not concurrent.futures.thread._worker:
        return None
    try:
        executor = thread._args[0]()  # type: ignore[attr-defined]
        return int(executor._max_workers)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def _body() -> dict[str, Any]:
    """The request's JSON object, {} for none; a body nested too deeply for the decoder is
    refused (a shallower deep one is measured where its values are used)."""
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        raise ProtocolError(400, "the request body is nested too deeply") from None
    return data if isinstance(data, dict) else {}


def _int_or_none(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(400, f"{what} must be a non-negative integer")
    return value


def _session(body: dict[str, Any]) -> str | None:
    session = body.get("session")
    if session is None:
        return None
    if not isinstance(session, str) or not 0 < len(session) <= 64:
        raise ProtocolError(400, "session must be a string of at most 64 characters")
    return session


def _running(body: dict[str, Any]) -> list[int] | None:
    running = body.get("running")
    if running is None:
        return None
    if not isinstance(running, list) or not all(
            isinstance(b, int) and not isinstance(b, bool) for b in running):
        raise ProtocolError(400, "running must be a list of build ids")
    return running


def _protocol_view(view: Callable[P, Answer]) -> Callable[P, Response]:
    """Turn a refused body (ProtocolError while reading it) into its 4xx answer."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return _send(view(*args, **kwargs))
        except ProtocolError as exc:
            return _send(Answer.error(exc))

    return wrapper


@bp.post("/hello")
@worker_auth
@_protocol_view
def hello() -> Answer:
    body = _body()
    info = body.get("info") or {}
    if not isinstance(info, dict):
        raise ProtocolError(400, "info must be an object")
    s = site()
    return protocol.hello(s.db, s.config, g.worker_name, g.request_key, info,
                          _session(body), _running(body))


@bp.post("/heartbeat")
@worker_auth
@_protocol_view
def heartbeat() -> Answer:
    body = _body()
    s = site()
    return protocol.heartbeat(s.db, s.config, g.worker_name, _session(body),
                              _running(body) or [], _int_or_none(body.get("settled"),
                                                                 "settled"))


@bp.post("/pong")
@worker_auth
@_protocol_view
def pong() -> Answer:
    """The worker's answer to a ping it was handed (by a heartbeat or a claim)."""
    token = _body().get("token")
    if not isinstance(token, int | float) or isinstance(token, bool):
        raise ProtocolError(400, "token must be the number the ping command carried")
    return protocol.pong(site().db, g.worker_name, g.request_key, float(token))


@bp.post("/goodbye")
@worker_auth
@_protocol_view
def goodbye() -> Answer:
    s = site()
    return protocol.goodbye(s.db, s.config, g.worker_name, g.request_key)


@bp.post("/claim")
@worker_auth
@_protocol_view
def claim() -> Answer:
    """Long-poll for work. It waits only where the server can afford it (see
    :func:`bbweb.engine.worker_protocol.long_poll_limit`); otherwise it answers at once and
    tells the worker when to poll again."""
    body = _body()
    try:
        wait = min(max(float(body.get("wait", 0) or 0), 0.0), MAX_CLAIM_WAIT)
    except (TypeError, ValueError):
        raise ProtocolError(400, "wait must be a number of seconds") from None
    seq = _int_or_none(body.get("seq"), "seq")
    s = site()
    limit = protocol.long_poll_limit(bool(request.environ.get("wsgi.multithread")),
                                     _serving_threads())
    with protocol.LONG_POLLS.slot(limit if wait > 0 else 0) as may_wait:
        cut_short = wait > 0 and not may_wait
        return protocol.claim(s.db, s.config, g.worker_name, g.request_key,
                              wait=0.0 if cut_short else wait, seq=seq,
                              client_gone=_client_gone,
                              poll_after=protocol.POLL_AFTER if cut_short else None)


@bp.post("/leases/<int:brid>/confirm")
@worker_auth
@_protocol_view
def confirm(brid: int) -> Answer:
    body = _body()
    s = site()
    return protocol.confirm(s.db, s.config, g.worker_name, g.request_key, brid,
                            _session(body), _int_or_none(body.get("seq"), "seq"),
                            first_step=body.get("step") is True)


@bp.post("/builds/<int:buildid>/next_step")
@worker_auth
@_protocol_view
def next_step(buildid: int) -> Answer:
    s = site()
    return protocol.next_step(s.db, s.config, g.worker_name, g.request_key, buildid)


@bp.post("/steps/<int:stepid>/log")
@worker_auth
@_protocol_view
def step_log(stepid: int) -> Answer:
    if request.mimetype == logframes.MEDIA_TYPE:
        return _step_log_frames(stepid)
    body = _body()
    logname = body.get("log", "stdio")
    chunks = body.get("chunks")
    if not isinstance(logname, str) or not logname or len(logname) > 255:
        raise ProtocolError(400, "log must be a log name")
    if not isinstance(chunks, list) or not all(
            isinstance(c, list | tuple) and len(c) == 2 and isinstance(c[1], str)
            for c in chunks):
        raise ProtocolError(400, "chunks must be a list of [stream, text] pairs")
    s = site()
    return protocol.append_log(s.db, s.config, g.worker_name, g.request_key, stepid,
                               logname, [(c[0], c[1]) for c in chunks])


def _step_log_frames(stepid: int) -> Answer:
    """Output a worker compressed (:mod:`bbweb.worker.logframes`), checked frame by frame
    before the write transaction starts."""
    logname = request.args.get("log", "stdio")
    if not logname or len(logname) > 255:
        raise ProtocolError(400, "log must be a log name")
    length = request.content_length
    if length is not None and length > MAX_LOG_BODY:
        raise ProtocolError(413, f"a log body may hold at most {MAX_LOG_BODY} bytes")
    # the body is read whole (it is compressed and bounded): read a frame header at a time,
    # the server's buffering copied what it had read ahead on every small read
    body = _read_body(MAX_LOG_BODY + 1)
    try:
        frames = list(logframes.decode(io.BytesIO(body).read, MAX_LOG_BODY))
    except logframes.FrameError as exc:
        raise ProtocolError(400, str(exc)) from None
    s = site()
    return protocol.append_log(s.db, s.config, g.worker_name, g.request_key, stepid,
                               logname, [], frames)


def _read_body(limit: int) -> bytes:
    """The request body, ``limit`` bytes of it at most, in reads of its length (or of
    1 MiB without one): a read is given a buffer of the size asked for."""
    parts = []
    left = limit
    step = request.content_length or 1024 * 1024
    while left > 0:
        data = request.stream.read(min(step, left))
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


@bp.post("/steps/<int:stepid>/finish")
@worker_auth
@_protocol_view
def step_finish(stepid: int) -> Answer:
    body = _body()
    rc = body.get("rc")
    interrupted = body.get("interrupted")
    props = body.get("properties") or {}
    error = body.get("error")
    if rc is not None and (not isinstance(rc, int) or isinstance(rc, bool)):
        raise ProtocolError(400, "rc must be an integer or null")
    if interrupted not in (None, "timeout", "stopped", "error"):
        raise ProtocolError(400, "interrupted must be null, timeout, stopped or error")
    if not isinstance(props, dict):
        raise ProtocolError(400, "properties must be an object")
    logname, frames = _finish_log(body.get("log"))
    s = site()
    return protocol.finish_step(s.db, s.config, g.worker_name, g.request_key, stepid, rc,
                                interrupted, props, error if isinstance(error, str) else None,
                                frames=frames, logname=logname,
                                then_next=body.get("next") is True)


def _finish_log(value: Any) -> tuple[str, list[logframes.Frame] | None]:
    """The step's last output a ``finish`` call may carry: ``{"name": LOG, "frames":
    BASE64}``, the frames in the form a log call's body has (:mod:`bbweb.worker.logframes`),
    checked frame by frame before the write transaction starts."""
    if value is None:
        return "stdio", None
    if not isinstance(value, dict):
        raise ProtocolError(400, "log must be an object with name and frames")
    logname = value.get("name", "stdio")
    encoded = value.get("frames")
    if not isinstance(logname, str) or not logname or len(logname) > 255:
        raise ProtocolError(400, "log name must be a log name")
    if not isinstance(encoded, str) or len(encoded) > MAX_LOG_BODY * 4 // 3 + 4:
        raise ProtocolError(400, "log frames must be base64 text of at most "
                            f"{MAX_LOG_BODY} bytes")
    try:
        body = base64.b64decode(encoded, validate=True)
        frames = list(logframes.decode(io.BytesIO(body).read, MAX_LOG_BODY))
    except binascii.Error:
        raise ProtocolError(400, "log frames must be base64 text") from None
    except logframes.FrameError as exc:
        raise ProtocolError(400, str(exc)) from None
    return logname, frames
