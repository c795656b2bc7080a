"""``/builders/X/builds/N`` and ``…/steps/S``: one build, one step.

``N`` may be negative (``-1`` is the latest build, running or not). ``S`` is a step name
(the first step with that name) or an index (``-1`` is the last step). Builder, step and
log names may contain spaces and ``/``: links quote them as one path segment each
(``a%2Fb``), and the URL is split on the *raw* request URI, where ``%2F`` is still one
segment (Werkzeug decodes it before routing). The log URLs below a step are served by
:mod:`bbweb.web.logs`; whichever of the two blueprints' rules matches, the request goes to
the page its raw segments name.

Every page reads a bounded amount of the database: two indexed lookups and
:func:`~bbweb.status.queries.load_build_details` for the build page, four queries for the
step page, whatever the builder's history.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response
from markupsafe import Markup

from bbweb.plugins.site import site
from bbweb.status import detail, estimates, eventstream
from bbweb.status.records import BuildInfo, StepInfo
from bbweb.web import decorations, logs, timefmt
from bbweb.web.build_urls import (
    BUILD_RULE,
    LOG_RULE,
    METHODS,
    Links,
    Target,
    not_found,
    parse_target,
)
from bbweb.web.events import live_page
from bbweb.web.rendering import bare_text, render_page, result_class

bp = Blueprint("builds", __name__)

NO_CACHE = {"Cache-Control": "no-cache"}

def dispatch() -> Response:
    target = parse_target()
    if target is None:
        return not_found("No such page.")
    if target.kind == "build":
        return build_page(target)
    if target.kind == "steps":
        return bare_text("subpages show data for each step")
    if target.kind == "step":
        return step_page(target)
    return logs.serve(target)


# Rules ending in "/" with strict_slashes=False answer with and without the slash (a rule
# pair would make Werkzeug redirect one to the other).
@bp.route(BUILD_RULE + "/", methods=METHODS, strict_slashes=False)
@bp.route(BUILD_RULE + "/steps/", methods=METHODS, strict_slashes=False)
@bp.route(BUILD_RULE + "/steps/<path:_rest>", methods=METHODS)
def build_subpage(**_parts: Any) -> Response:
    return dispatch()


@bp.route(LOG_RULE + "/", methods=METHODS, strict_slashes=False)
def log_subpage(**_parts: Any) -> Response:
    # the raw URL decides (a step may be named "x/logs/y")
    return dispatch()


# -- the build page ------------------------------------------------------------------------------

def step_css(step: StepInfo) -> str:
    if step.is_finished:
        return result_class(step.results)
    return "running" if step.is_started else "not_started"


def step_duration(step: StepInfo) -> str:
    if step.is_finished and step.started_at is not None:
        return timefmt.duration(step.finished_at - step.started_at)  # type: ignore[operator]
    return "running" if step.is_started else ""


def url_links(urls: dict[str, Any]) -> list[Markup]:
    """A step's URLs as links (only web and mail schemes become links)."""
    return [decorations.link(str(url), str(name)) for name, url in urls.items()]


def step_entry(step: StepInfo, links: Links) -> dict[str, Any]:
    return {
        "name": step.name,
        "css": step_css(step),
        "link": links.step(step.name),
        "text": " ".join(str(t) for t in step.text),
        "duration": step_duration(step),
        "logs": [{"name": lg.name, "link": links.log(step.name, lg.name),
                  "has_contents": detail.log_has_contents(lg)} for lg in step.logs],
        "urls": url_links(step.urls),
    }


def result_text(build: BuildInfo) -> str:
    """The build text joined with spaces, first letter upper case (0.8's ``capitalize``
    also lower-cased the rest, which mangled names)."""
    text = " ".join(str(t) for t in build.text)
    return text[:1].upper() + text[1:]


def build_page(target: Target) -> Response:
    s = site()
    cfg = s.config
    now = time.time()
    with s.db.read() as conn:
        # the stream position first, in the page's own transaction: whatever happens while
        # the page is read is replayed, and one connection serves the page
        after = eventstream.position_in(conn)
        builder, build = detail.find_build(conn, target.builder, target.number)
        expected = estimates.expected_durations(conn, [builder]).get(builder.id) \
            if builder is not None and build is not None and not build.is_finished else None
    if builder is None:
        return not_found(f"No such builder {target.builder!r}.")
    if build is None:
        return not_found(f"Builder {target.builder!r} has no build number {target.number}.")
    links = Links(target.to_root, build.builder, build.number)
    props, forced = detail.split_properties(cfg, build.properties)
    stamps = []
    for ss in build.sourcestamps:
        stamps.append({
            "ss": ss,
            "got_revision": detail.got_revision(build.properties, ss, len(build.sourcestamps)),
            "most_recent": not (ss.branch or ss.revision or ss.patch or ss.changes),
        })
    current = build.current_step
    live = None
    if not build.is_finished:
        after.logs_done = eventstream.page_position(s.db, build.id).logs_done
        live = live_page(after, with_logs=True, builder=build.builder,
                         build=str(build.number))
    return render_page(
        "build.html", f"Buildbot: {build.builder} Build #{build.number}",
        headers=NO_CACHE, to_root=target.to_root, b=build, links=links,
        result_css=result_class(build.results), result_text=result_text(build),
        current_step=current.name if current else None,
        stamps=stamps, has_changes=any(ss.changes for ss in build.sourcestamps),
        slave_link=links.slave(build.slave) if build.slave in cfg.slaves else None,
        steps=[step_entry(st, links) for st in build.steps
               if not (st.hidden and st.is_finished)],
        properties=props, forced_properties=forced,
        responsible_users=build.blame,
        start=build.started_at, end=build.finished_at,
        elapsed=(build.finished_at or now) - build.started_at,
        eta=estimates.eta_seconds(expected, build.started_at, now), live=live)


# -- the step page -------------------------------------------------------------------------------

def step_page(target: Target) -> Response:
    s = site()
    with s.db.read() as conn:
        builder, build = detail.find_build_with_steps(conn, target.builder, target.number)
    if builder is None:
        return not_found(f"No such builder {target.builder!r}.")
    if build is None:
        return not_found(f"Builder {target.builder!r} has no build number {target.number}.")
    step = detail.select_step(build.steps, target.step)
    if step is None:
        return not_found(f"Build #{build.number} of {build.builder!r} has no step "
                         f"{target.step!r}.")
    links = Links(target.to_root, build.builder, build.number)
    now = time.time()
    elapsed = None
    if step.started_at is not None:
        elapsed = (step.finished_at or now) - step.started_at
    return render_page(
        "buildstep.html", "Build Step", headers=NO_CACHE, to_root=target.to_root,
        b=build, s=step, links=links, result_css=step_css(step),
        step_text=" ".join(str(t) for t in step.text),
        logs=[{"name": lg.name, "link": links.log(step.name, lg.name),
               "has_contents": detail.log_has_contents(lg), "complete": lg.complete,
               "num_bytes": lg.num_bytes} for lg in step.logs],
        statistics=sorted((str(k), detail.value_text(v)) for k, v in step.statistics.items()),
        urls=url_links(step.urls), start=step.started_at, end=step.finished_at,
        elapsed=elapsed)


__all__ = ["bp", "build_page", "dispatch", "step_page"]
