"""``…/steps/S/logs/L`` (HTML) and ``…/logs/L/text`` (plain text): a step's log, streamed;
``…/logs/L/chunks?after=SEQ`` (JSON) feeds the HTML page's live follow.

Both views stream in constant memory: chunks are read in bounded batches
(:mod:`bbweb.status.logstream`) and written out one at a time, so a 1 GB log costs one
batch of memory.

Following a log that is still being written:

* HTML: the page streams what exists and ends. For an unfinished log it ends with a small
  script that asks ``L/chunks?after=SEQ`` every second and appends what is new (as text,
  never as markup) until the log completes; no server thread waits on a viewer. Without
  JavaScript a ``<noscript>`` meta refresh reloads the page instead.
* Text: the response stays open and the database is asked for new chunks every
  :data:`~bbweb.status.logstream.FOLLOW_POLL_SECONDS` (0.5 s) until the log completes or
  :data:`~bbweb.status.logstream.FOLLOW_MAX_SECONDS` (30 minutes) pass, then it ends
  (``curl …/text`` works like ``tail -f``). Such a response holds one server thread while
  it lasts; the bound keeps a forgotten terminal from holding it for ever.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import Response, jsonify, request, stream_template, stream_with_context
from markupsafe import Markup

from bbweb.plugins.site import site
from bbweb.status import detail, logstream
from bbweb.status.records import LogInfo
from bbweb.web.build_urls import Links, Target, not_found

FINISHED_CACHE = "max-age=604800"
REFRESH_SECONDS = 5  # the meta refresh of an unfinished log's page without JavaScript


@dataclass
class _Found:
    links: Links
    step: str
    log: LogInfo


def _find(target: Target) -> _Found | Response:
    with site().db.read() as conn:
        builder, build = detail.find_build_with_steps(conn, target.builder, target.number)
    if builder is None:
        return not_found(f"No such builder {target.builder!r}.")
    if build is None:
        return not_found(f"Builder {target.builder!r} has no build number {target.number}.")
    step = detail.select_step(build.steps, target.step)
    if step is None:
        return not_found(f"Build #{build.number} of {build.builder!r} has no step "
                         f"{target.step!r}.")
    log = detail.select_log(step, target.log)
    if log is None:
        return not_found(f"Step {step.name!r} has no log {target.log!r}.")
    if not detail.log_has_contents(log):
        return not_found(f"Empty Log '{log.name}'")
    return _Found(Links(target.to_root, build.builder, build.number), step.name, log)


def serve(target: Target) -> Response:
    found = _find(target)
    if isinstance(found, Response):
        return found
    if target.kind == "chunks":
        return chunks(found)
    if target.kind == "text":
        return text(found)
    return html(found, target)


def _cache_headers(log: LogInfo) -> dict[str, str]:
    if log.complete:
        return {"Cache-Control": FINISHED_CACHE}
    # nginx and friends must not buffer a live log
    return {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass
class _Progress:
    after: int = -1  # the last chunk streamed so far


def html(found: _Found, target: Target) -> Response:
    db = site().db
    log = found.log
    progress = _Progress()

    def spans() -> Any:
        for chunk in logstream.iter_chunks(db, log.id):
            progress.after = chunk.seq
            yield logstream.chunk_html(chunk.stream, chunk.text)

    def pieces() -> Any:
        for html_text in logstream.coalesce(spans()):
            yield Markup(html_text)

    log_link = found.links.log(found.step, log.name)
    body = stream_template(
        "log.html", to_root=target.to_root, links=found.links, step=found.step,
        log_name=log.name, pieces=pieces(), progress=progress, live=not log.complete,
        refresh=REFRESH_SECONDS, text_link=log_link + "/text",
        chunks_link=log_link + "/chunks")
    return Response(body, content_type="text/html; charset=utf-8",
                    headers=_cache_headers(log))


def text(found: _Found) -> Response:
    db = site().db
    log = found.log
    source: Iterator[logstream.Chunk | None]
    if log.complete:
        source = logstream.iter_chunks(db, log.id, streams="oe")
    else:
        source = logstream.follow_chunks(db, log.id, streams="oe")

    def body() -> Any:
        # a None from follow_chunks (before it waits) writes out what is held
        yield from logstream.coalesce(None if c is None else c.text for c in source)

    headers = _cache_headers(log)
    headers["X-Content-Type-Options"] = "nosniff"  # user text: never sniffed as HTML
    return Response(stream_with_context(body()), content_type="text/plain; charset=utf-8",
                    headers=headers)


def chunks(found: _Found) -> Response:
    """``{"after": SEQ, "complete": bool, "more": bool, "chunks": [[stream, text], …],
    "spans": [[css classes, text], …]}``: the chunks after ``?after=SEQ`` (default -1:
    from the start), at most about 1 MB of text per answer (``more`` says there is
    more right now); pass the answer's ``after`` to the next request. ``complete`` is true
    once the log is finished and the answer reached its end."""
    raw = request.args.get("after", "-1")
    try:
        after = int(raw)
    except ValueError:
        resp = jsonify({"error": "after must be an integer chunk number"})
        resp.status_code = 400
        return resp
    with site().db.read() as conn:
        new, complete, more = logstream.new_chunks(conn, found.log.id, max(after, -1))
    resp = jsonify({
        "after": new[-1].seq if new else max(after, -1),
        "complete": complete,
        "more": more,
        "chunks": [[logstream.STREAM_NAMES[c.stream], c.text] for c in new],
        "spans": [[cls, piece] for c in new for cls, piece in
                  logstream.chunk_spans(c.stream, c.text)],
    })
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


__all__ = ["chunks", "html", "serve", "text"]
