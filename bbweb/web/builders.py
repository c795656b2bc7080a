"""``/builders``, ``/builders/X``, ``/one_line_per_build[/X]``, ``/one_box_per_builder`` and
``/buildstatus``: what each builder is doing and what it did lately.

Every page reads a bounded amount of the status database (see
:mod:`bbweb.status.overview`). Deliberate differences from 0.8 are listed in
``docs/compat.md``: unknown builders and bad arguments give 404/400 pages instead of server
errors, non-integer counts fall back to their defaults, property filters work on pending
requests, and ``/buildstatus`` errors carry a real status code.
"""

from __future__ import annotations

import time
from typing import Any, TypedDict
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, redirect, request

from bbweb.plugins.site import site
from bbweb.status import actions as status_actions
from bbweb.status import estimates, eventstream, overview, queries, upcoming
from bbweb.status.naming import natural_key
from bbweb.status.records import BuilderInfo, BuilderSummary, BuildInfo, BuildRequestInfo
from bbweb.values.numbers import in_int_range
from bbweb.web.events import live_page
from bbweb.web.helpers import (
    INT_ARG,
    WEB_SCHEMES,
    builder_infos,
    int_arg,
    not_found,
    page_root,
    path_segment,
    safe_href,
)
from bbweb.web.rendering import bare_text, render_page

bp = Blueprint("builders", __name__)
bp.app_template_filter("path_segment")(path_segment)

METHODS = ["GET", "POST"]
DEFAULT_MAXSEARCH = 200
NO_CACHE = {"Cache-Control": "no-cache"}


def build_text(build: BuildInfo) -> str:
    """The build's text joined by spaces, first letter upper-cased (the rest kept: 0.8's
    ``capitalize`` also lower-cased it)."""
    text = " ".join(str(t) for t in build.text)
    return text[:1].upper() + text[1:]


def property_filters() -> dict[str, str]:
    """``property.NAME=VALUE`` arguments (first value of each)."""
    return {key[len("property."):]: request.args.get(key, "")
            for key in request.args if key.startswith("property.") and len(key) > 9}


def waterfall_available() -> bool:
    return "waterfall.waterfall" in current_app.view_functions


# -- /builders ----------------------------------------------------------------------------------

def _last_build_label(build: BuildInfo) -> str:
    """The got_revision when there is exactly one and it is short, else ``#N``."""
    value = next((v for n, v, _s in build.properties if n == "got_revision"), None)
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    if isinstance(value, str | int) and not isinstance(value, bool) and value != "" \
            and len(str(value)) <= 20:
        return str(value)
    return f"#{build.number}"


class _Entry(TypedDict):
    """A row of the builders page."""

    name: str
    build: BuildInfo | None
    label: str
    text: str
    summary: BuilderSummary


@bp.route("/builders", methods=METHODS)
@bp.route("/builders/", methods=METHODS)
def builders() -> Response:
    s = site()
    cfg = s.config
    asked = [n for n in request.args.getlist("builder") if n]
    unknown = [n for n in asked if n not in cfg.builders]
    if unknown:
        return not_found(f"No such builder {unknown[0]!r}.")
    names = list(dict.fromkeys(asked)) or sorted(cfg.builders, key=natural_key)
    branches = overview.branch_filter(request.args.getlist("branch"))
    with s.db.read() as conn:
        rows = builder_infos(conn, names)
        summaries = queries.builder_summaries(conn, cfg, names, rows=rows)
        scheduled = upcoming.upcoming_builds(conn, cfg, names)
        summaries = upcoming.with_waiting(summaries, scheduled)
        running = {rows[n].id: len(summaries[n].current_builds) for n in names}
        last = overview.finished_builds(conn, rows.values(), 1, branches=branches,
                                        search=DEFAULT_MAXSEARCH, running=running)
        shown = [lst[0] for lst in last.values() if lst]
        overview.load_table_details(conn, shown)
        etas = _running_etas(conn, [rows[n] for n in names if summaries[n].current_builds])
    entries: list[_Entry] = []
    for name in names:
        summary = summaries[name]
        found = last.get(rows[name].id)
        build = found[0] if found else None
        entries.append({
            "name": name,
            "build": build,
            "label": _last_build_label(build) if build else "",
            "text": " ".join(str(t) for t in build.text) if build else "",
            "summary": summary,
        })
    return render_page("builders.html", "Builders", builders=entries, etas=etas,
                       upcoming=scheduled,
                       branches=sorted(b for b in (branches or ()) if b is not None),
                       num_building=sum(1 for e in entries
                                        if e["summary"].state == "building"),
                       num_online=sum(1 for e in entries if e["summary"].state != "offline"),
                       to_root=page_root())


@bp.route("/one_box_per_builder", methods=METHODS)
def one_box_per_builder() -> Response:
    resp = redirect("builders", code=302)
    assert isinstance(resp, Response)  # for the type checker: redirect() is typed loosely
    return resp


# -- /builders/X --------------------------------------------------------------------------------

@bp.route("/builders/<path:subpath>", methods=METHODS)
def builder_or_subpage(subpath: str) -> Response:
    """``/builders/X``, ``/builders/X/`` and ``/builders/X/builds`` (X may contain ``/``,
    encoded as ``%2F``)."""
    cfg = site().config
    if subpath in cfg.builders:
        return builder_page(subpath)
    if subpath.endswith("/") and subpath[:-1] in cfg.builders:
        return builder_page(subpath[:-1])
    for suffix in ("/builds", "/builds/"):
        if subpath.endswith(suffix) and subpath[:-len(suffix)] in cfg.builders:
            return bare_text("subpages shows data for each build")
    name = subpath.rstrip("/")
    if "/" in name:
        head = name.split("/", 1)[0]
        if head in cfg.builders:
            return not_found(f"No such page under builder {head!r}.")
    return not_found(f"No such builder {name!r}.")


def _running_etas(conn: Any, building: list[BuilderInfo]) -> dict[tuple[str, int], float | None]:
    """(builder, number) -> seconds left, for the running builds of ``building``. Two
    queries, bounded by the running builds and each builder's newest builds."""
    if not building:
        return {}
    now = time.time()
    expected = estimates.expected_durations(conn, building)
    runs = queries.running_builds(conn, builderids=[b.id for b in building], details=False)
    return {(b.builder, b.number): estimates.eta_seconds(expected.get(b.builderid),
                                                          b.started_at, now) for b in runs}


def _current_entry(build: BuildInfo, now: float, expected: float | None = None
                   ) -> dict[str, Any]:
    step = build.current_step
    return {"build": build, "step": step.name if step else None,
            "elapsed": max(now - build.started_at, 0.0),
            "eta": estimates.eta_seconds(expected, build.started_at, now)}


def _pending_entry(req: BuildRequestInfo, now: float) -> dict[str, Any]:
    changes = [c for ss in req.sourcestamps for c in ss.changes]
    props = {name: value for name, value, _src in req.properties}
    stamps = [ss for ss in req.sourcestamps if ss.branch or ss.revision]
    return {"req": req, "changes": changes, "waiting": max(now - req.submitted_at, 0.0),
            "owner": props.get("owner"), "reason": props.get("reason"), "stamps": stamps}


def builder_page(name: str) -> Response:
    s = site()
    cfg = s.config
    bcfg = cfg.builders[name]
    numbuilds = int_arg("numbuilds", cfg.web.numbuilds)
    maxsearch = int_arg("maxsearch", DEFAULT_MAXSEARCH)
    props = property_filters()
    now = time.time()
    # one transaction for the whole page (on PostgreSQL every checkout costs a ping and a
    # BEGIN/COMMIT: round trips that queue behind other work on a busy server)
    with s.db.read() as conn:
        after = eventstream.position_in(conn)  # first: nothing falls between it and the data
        builder = builder_infos(conn, [name])[name]
        current = queries.running_builds(conn, builderids=[builder.id])
        pending = queries.pending_build_requests(conn, builder)
        recent = overview.finished_builds(
            conn, [builder], numbuilds, properties=props, search=maxsearch,
            running={builder.id: len(current)}).get(builder.id, [])
        overview.load_table_details(conn, recent)
        slaves = queries.get_slaves(conn, cfg, bcfg.slavenames)
        slave_actions = status_actions.slave_actions(conn, bcfg.slavenames)
        cancelled = status_actions.recent_cancellations(conn, builder.id)
        expected = estimates.expected_durations(conn, [builder]).get(builder.id) \
            if current else None
    current = [b for b in current if overview.matches_properties(b.properties, props)]
    pending = [r for r in pending if overview.matches_properties(r.properties, props)]
    more: dict[str, int | str] = {"numbuilds": numbuilds + 5}
    if "maxsearch" in request.args:
        more["maxsearch"] = maxsearch
    more.update({f"property.{k}": v for k, v in props.items()})
    return render_page(
        "builder.html", f"Buildbot: {name}", headers=NO_CACHE,
        name=name, description=bcfg.description, category=bcfg.category,
        current=[_current_entry(b, now, expected) for b in current],
        pending=[_pending_entry(r, now) for r in pending],
        recent=overview.build_rows(recent), numbuilds=numbuilds, filters=props,
        # only when the page is full: fewer builds than asked for means there are no more
        show_more="?" + urlencode(more) if len(recent) >= numbuilds else None,
        slaves=[slaves[n] for n in bcfg.slavenames if n in slaves],
        slave_actions=slave_actions, cancelled=cancelled,
        waterfall=waterfall_available(), to_root=page_root(),
        live=live_page(after, builder=name, kind="builds,steps,slaves", delay_ms=1000))


# -- /one_line_per_build ------------------------------------------------------------------------

@bp.route("/one_line_per_build", methods=METHODS)
@bp.route("/one_line_per_build/", methods=METHODS)
def one_line_per_build() -> Response:
    s = site()
    cfg = s.config
    asked = [n for n in request.args.getlist("builder") if n]
    unknown = [n for n in asked if n not in cfg.builders]
    if unknown:
        return not_found(f"No such builder {unknown[0]!r}.")
    names = list(dict.fromkeys(asked)) or sorted(cfg.builders, key=natural_key)
    numbuilds = int_arg("numbuilds", cfg.web.numbuilds)
    branches = overview.branch_filter(request.args.getlist("branch"))
    with s.db.read() as conn:
        rows = builder_infos(conn, names)
        per_builder = overview.finished_builds(conn, rows.values(), numbuilds,
                                               branches=branches, search=DEFAULT_MAXSEARCH)
        found = overview.merge_by_finish(per_builder.values(), numbuilds)
        overview.load_table_details(conn, found)
    return render_page("onelineperbuild.html", "Recent Builds",
                       builds=overview.build_rows(found), num_builds=numbuilds,
                       builders=list(dict.fromkeys(asked)),
                       branches=sorted(b for b in (branches or ()) if b is not None),
                       to_root=page_root())


@bp.route("/one_line_per_build/<path:subpath>", methods=METHODS)
def one_line_per_build_builder(subpath: str) -> Response:
    s = site()
    cfg = s.config
    name = subpath if subpath in cfg.builders else subpath.rstrip("/")
    if name not in cfg.builders:
        return not_found(f"No such builder {name!r}.")
    numbuilds = int_arg("numbuilds", cfg.web.numbuilds)
    branches = overview.branch_filter(request.args.getlist("branch"))
    with s.db.read() as conn:
        builder = builder_infos(conn, [name])[name]
        found = overview.finished_builds(conn, [builder], numbuilds, branches=branches,
                                         search=DEFAULT_MAXSEARCH).get(builder.id, [])
        overview.load_table_details(conn, found)
    return render_page("onelineperbuild_builder.html", f"Recent Builds of {name}",
                       name=name, builds=overview.build_rows(found), num_builds=numbuilds,
                       branches=sorted(b for b in (branches or ()) if b is not None),
                       to_root=page_root())


# -- /buildstatus -------------------------------------------------------------------------------

def _buildstatus_error(message: str, status: int) -> Response:
    return render_page("buildstatus.html", "Build status", status=status, headers=NO_CACHE,
                       message=message, build=None, steps=[], to_root=page_root())


@bp.route("/buildstatus", methods=METHODS)
def buildstatus() -> Response:
    s = site()
    name = request.args.get("builder", "")
    number_arg = request.args.get("number", "")
    if not name or not number_arg:
        return _buildstatus_error("builder and number parameter missing", 400)
    if not INT_ARG.fullmatch(number_arg) or not in_int_range(int(number_arg)):
        return _buildstatus_error(f"bad build number {number_arg!r}", 400)
    number = int(number_arg)
    if name not in s.config.builders:
        return _buildstatus_error(f"unknown builder {name!r}", 404)
    with s.db.read() as conn:
        builder = builder_infos(conn, [name])[name]
        build = queries.get_build(conn, builder, number) if builder.id >= 0 else None
    if build is None:
        return _buildstatus_error(f"unknown build {number}", 404)
    steps = [{"step": st, "urls": [(label, safe_href(url, WEB_SCHEMES))
                                   for label, url in sorted(st.urls.items())]}
             for st in reversed(build.steps) if st.is_started and st.text]
    return render_page("buildstatus.html", f"Buildbot: {name} Build #{build.number}",
                       headers=NO_CACHE, message=None, build=build, steps=steps,
                       to_root=page_root())
