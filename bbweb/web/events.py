"""``/json/events``: the live status stream as Server-Sent Events (in place of Buildbot
0.8's PBListener port).

``?kind=`` (repeatable or comma-separated: builds, steps, changes, slaves, logs),
``?builder=`` (repeatable), ``?build=N`` (one build of one builder; with ``kind=logs``
its log chunks too). ``Last-Event-ID`` (sent by browsers when they reconnect) or
``?after=`` resumes exactly after that id; without either the stream starts with the next
event (a build stream: with the build's logs from their start). The reading is
:mod:`bbweb.status.eventstream`'s; this view checks arguments and manages stream slots.

A stream holds one of the web process's threads while it is open. So that pages are
always served, a process runs at most :func:`stream_slots` streams at once (gunicorn's
thread pool is that much larger than the page threads, see :mod:`bbweb.launcher`); a
client beyond that gets 503 with ``Retry-After`` and tries again (docs/deployment.md,
"The live status stream").
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import Blueprint, Response, request

from bbweb.plugins.site import site
from bbweb.status import eventstream
from bbweb.status.eventwait import latest_event_id, wake
from bbweb.web import hangup
from bbweb.web.worker_api import _serving_threads

bp = Blueprint("live_events", __name__)
log = logging.getLogger("bbweb.events")

STREAM_SLOTS_VAR = "BBWEB_STREAM_SLOTS"
UNCONFIGURED_SLOTS = 4
"""Streams per process when :data:`STREAM_SLOTS_VAR` is not set (a server whose thread
pool was not sized for streams by bbweb's gunicorn settings loses at most these threads)."""
PAGE_THREADS_KEPT = 8
"""Threads of a process's pool that streams never take, whatever the setting says."""
RETRY_AFTER_SECONDS = 15


def stream_slots(multithreaded: bool = True, threads: int | None = None) -> int:
    """How many streams this process serves at once: ``$BBWEB_STREAM_SLOTS`` (else
    :data:`UNCONFIGURED_SLOTS`), but none on a server that serves one request at a time
    (gunicorn's sync worker class: a stream would stop every page) and, where the thread
    pool's size is known, never more than leaves :data:`PAGE_THREADS_KEPT` to pages."""
    if not multithreaded:
        return 0
    raw = os.environ.get(STREAM_SLOTS_VAR, "").strip()
    limit = int(raw) if raw.isdigit() else UNCONFIGURED_SLOTS
    if threads is not None:
        limit = min(limit, max(threads - PAGE_THREADS_KEPT, 0))
    return limit


class _Slots:
    """The streams open in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0

    def take(self, limit: int) -> bool:
        with self._lock:
            if self.open >= limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open -= 1


slots = _Slots()


def _bad(message: str, status: int = 400, **headers: str) -> Response:
    return Response(message + "\n", status=status, headers=headers,
                    content_type="text/plain; charset=utf-8")


@bp.get("/json/events")
def events() -> Response:
    db = site().db
    try:
        query = eventstream.parse_query(request.args.getlist("kind"),
                                        request.args.getlist("builder"),
                                        request.args.get("build"))
        resume = request.headers.get("Last-Event-ID") or request.args.get("after")
        pos = eventstream.Position.parse(resume) if resume else None
        eventstream.resolve(db, query)
    except eventstream.StreamArgumentError as exc:
        return _bad(f"bad stream request: {exc}")
    if pos is None:
        pos = eventstream.Position(latest_event_id(db))
    if query.buildid is not None and eventstream.at_end(db, query, pos):
        # nothing more will ever come: 204 tells an EventSource not to reconnect
        return Response(status=204)
    limit = stream_slots(bool(request.environ.get("wsgi.multithread")), _serving_threads())
    if not limit:
        return _bad("this web process serves no live streams (it serves one request at a "
                    "time, or BBWEB_STREAM_SLOTS is 0): docs/deployment.md, 'The live status "
                    "stream'", 503, **{"Retry-After": str(RETRY_AFTER_SECONDS)})
    if not slots.take(limit):
        return _bad("every live stream slot of this web process is taken; try again later "
                    "(docs/deployment.md, 'The live status stream')", 503,
                    **{"Retry-After": str(RETRY_AFTER_SECONDS)})
    gone = threading.Event()

    def client_left() -> None:
        gone.set()
        wake(db)

    # the server's socket (gunicorn's), so that a client who leaves frees its slot at once
    sock = request.environ.get("gunicorn.socket")
    forget = hangup.watch.watch(sock, client_left) if sock is not None else None
    released = threading.Event()

    def release() -> None:
        if not released.is_set():
            released.set()
            if forget is not None:
                forget()
            slots.give_back()

    def body() -> Iterator[str]:
        try:
            yield from eventstream.stream(db, query, pos, gone=gone)
        except sa.exc.SQLAlchemyError as exc:  # the client reconnects and resumes
            log.warning("live stream ended: database error: %s", exc)
        finally:
            release()

    resp = Response(body(), content_type="text/event-stream; charset=utf-8",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    resp.call_on_close(release)
    return resp


def live_page(after: eventstream.Position, with_logs: bool = False, delay_ms: int = 300,
              **args: str | list[str]) -> dict[str, str]:
    """What layout.html needs for a page that follows the stream (bbweb/static/live.js):
    the stream's query, the position the page was rendered at, and how long the page
    gathers events before it fetches itself again (a big page, such as the waterfall, is
    not rebuilt for every event of a busy master)."""
    pairs = [(k, v) for k, vs in args.items() for v in ([vs] if isinstance(vs, str) else vs)]
    return {"query": urlencode(pairs), "after": after.text(with_logs), "delay": str(delay_ms)}


__all__ = ["RETRY_AFTER_SECONDS", "STREAM_SLOTS_VAR", "bp", "events", "live_page", "slots",
           "stream_slots"]
