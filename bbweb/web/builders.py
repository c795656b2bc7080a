"""``/builders``, ``/builders/X``, ``/one_line_per_build[/X]``, ``/one_box_per_builder`` and
``/buildstatus``: what each builder is doing and what it did lately.

Every page reads a bounded amount of the status database (see
:mod:`bbweb.status.overview`). Deliberate differences from 0.8 are listed in
``docs/compat.md``: unknown builders and bad arguments give 404/400 pages instead of server
errors, non-integer counts fall back to their defaults, property filters work on pending
requests, and ``/buildstatus`` errors carry a real status code.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from flask import Blueprint, Response, current_app, redirect, request

from bbweb.plugins.site import site
from bbweb.status import estimates, overview, queries, upcoming
from bbweb.status.records import BuilderInfo, BuildInfo, BuildRequestInfo
from bbweb.values.numbers import in_int_range
from bbweb.web.rendering import bare_text, render_page, to_root

bp = Blueprint("builders", __name__)

METHODS = ["GET", "POST"]
MAX_COUNT = 1000  # numbuilds/maxsearch above this are lowered to it: a page stays a page
DEFAULT_MAXSEARCH = 200
NO_CACHE = {"Cache-Control": "no-cache"}
_INT = re.compile(r"\s*[-+]?\d+\s*")


# -- helpers shared with the buildslaves pages --------------------------------------------------

@bp.app_template_filter("path_segment")
def path_segment(name: Any) -> str:
    """A name as one URL path segment: everything but unreserved characters quoted, so
    spaces, ``/``, ``?`` and ``#`` in builder and slave names stay inside the segment."""
    return quote(str(name), safe="")


def page_root() -> str:
    """``to_root`` for the current page computed on the URL the browser sees: a name with
    an encoded ``/`` (``a%2Fb``) is one segment to the browser although Werkzeug decodes
    it into two."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        path = urlsplit(raw).path
        prefix = request.script_root
        if prefix and path.startswith(prefix):
            path = path[len(prefix):]
        if unquote(path) == request.path:
            return to_root(path)
    return to_root()


WEB_SCHEMES = frozenset({"", "http", "https", "ftp", "mailto"})
_STRIP_ANYWHERE = str.maketrans("", "", "\t\r\n")
_C0_OR_SPACE = "".join(chr(c) for c in range(0x21))


def safe_href(url: Any, schemes: frozenset[str]) -> str | None:
    """``url`` cleaned the way browsers clean it (tabs and newlines dropped, control
    characters and spaces trimmed), or None when its scheme is not in ``schemes`` (so a
    slave or a step cannot make a ``javascript:`` link)."""
    if not isinstance(url, str):
        return None
    cleaned = url.translate(_STRIP_ANYWHERE).strip(_C0_OR_SPACE)
    if not cleaned:
        return None
    try:
        scheme = urlsplit(cleaned).scheme.lower()
    except ValueError:
        return None
    return cleaned if scheme in schemes else None


def int_arg(name: str, default: int, *, low: int = 0, high: int = MAX_COUNT) -> int:
    """An integer argument, clamped; absent or not an integer: ``default`` (0.8 failed
    with a server error)."""
    value = request.args.get(name)
    if value is None or not _INT.fullmatch(value):
        return default
    return min(max(int(value), low), high)


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``slave2`` before ``slave10``."""
    return [(0, int(part), "") if part.isdecimal() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", name) if part]


def not_found(message: str) -> Response:
    return render_page("error.html", "Not Found", status=404, message=message,
                       to_root=page_root())


def builder_infos(conn: Any, names: list[str]) -> dict[str, BuilderInfo]:
    """Rows of configured builders, with a placeholder for one not in the database yet
    (no history: id -1, nothing to read)."""
    cfg = site().config
    rows = queries.builder_rows(conn, names)
    for name in names:
        if name not in rows:
            bcfg = cfg.builders[name]
            rows[name] = BuilderInfo(id=-1, name=name, category=bcfg.category,
                                     builddir=bcfg.builddir, next_number=0, active=True)
    return rows


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
    entries = []
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
    return redirect("builders", code=302)


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
    with s.db.read() as conn:
        builder = builder_infos(conn, [name])[name]
        current = queries.running_builds(conn, builderids=[builder.id])
        pending = queries.pending_build_requests(conn, builder)
        recent = overview.finished_builds(
            conn, [builder], numbuilds, properties=props, search=maxsearch,
            running={builder.id: len(current)}).get(builder.id, [])
        overview.load_table_details(conn, recent)
        slaves = queries.get_slaves(conn, cfg, bcfg.slavenames)
        expected = estimates.expected_durations(conn, [builder]).get(builder.id) \
            if current else None
    current = [b for b in current if overview.matches_properties(b.properties, props)]
    pending = [r for r in pending if overview.matches_properties(r.properties, props)]
    more = {"numbuilds": numbuilds + 5}
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
        waterfall=waterfall_available(), to_root=page_root())


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
    if not _INT.fullmatch(number_arg) or not in_int_range(int(number_arg)):
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
