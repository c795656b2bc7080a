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

import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from flask import Blueprint, Response, request
from markupsafe import Markup

from bbweb.plugins.site import site
from bbweb.status import detail, estimates
from bbweb.status.records import BuildInfo, StepInfo
from bbweb.web import decorations, timefmt
from bbweb.web.rendering import bare_text, render_page, result_class

bp = Blueprint("builds", __name__)

METHODS = ["GET", "POST"]
NO_CACHE = {"Cache-Control": "no-cache"}
BUILD_RULE = "/builders/<path:_builder>/builds/<int(signed=True):_number>"
_NUMBER = re.compile(r"-?[0-9]+")


def segment(name: Any) -> str:
    """A name as one URL path segment (spaces, ``/``, ``?``, ``#`` all quoted)."""
    return quote(str(name), safe="")


# -- which page a URL names ----------------------------------------------------------------------

def request_segments() -> list[str]:
    """The decoded path segments of this request as the browser sent them: split on the raw
    URI (when the server provides it, as gunicorn and Werkzeug do) so that ``%2F`` stays
    inside its segment. A trailing slash gives a last empty segment."""
    decoded = request.path
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        parts = urlsplit(raw).path.split("/")
        want = decoded.lstrip("/")
        for start in range(1, len(parts)):
            if "/".join(unquote(p) for p in parts[start:]) == want:
                return [unquote(p) for p in parts[start:]]
    return want.split("/") if (want := decoded.lstrip("/")) else []


@dataclass
class Target:
    """What a URL under ``/builders/X/builds/N`` asks for."""

    kind: str  # build | steps | step | log | text | chunks
    builder: str
    number: int
    step: str = ""
    log: str = ""
    depth: int = 0  # path segments, for the relative way back to the root
    rest: list[str] = field(default_factory=list)

    @property
    def to_root(self) -> str:
        return "../" * (self.depth - 1) if self.depth > 1 else "./"


def parse_target() -> Target | None:
    segs = request_segments()
    depth = len(segs)
    if len(segs) < 4 or segs[0] != "builders" or segs[2] != "builds" \
            or not _NUMBER.fullmatch(segs[3]):
        return None
    builder, number = segs[1], int(segs[3])
    rest = segs[4:]
    if rest and rest[-1] == "":  # a trailing slash
        rest = rest[:-1]
    base = {"builder": builder, "number": number, "depth": depth, "rest": rest}
    if not rest:
        return Target("build", **base)
    if rest[0] != "steps":
        return None
    if len(rest) == 1:
        return Target("steps", **base)
    if len(rest) == 2:
        return Target("step", step=rest[1], **base)
    if rest[2] != "logs" or len(rest) < 4:
        return None
    if len(rest) == 4:
        return Target("log", step=rest[1], log=rest[3], **base)
    if len(rest) == 5 and rest[4] in ("text", "chunks"):
        return Target(rest[4], step=rest[1], log=rest[3], **base)
    return None


def not_found(message: str) -> Response:
    return render_page("error.html", "Not Found", status=404, message=message)


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
    from bbweb.web import logs  # logs imports this module

    return logs.serve(target)


# Rules ending in "/" with strict_slashes=False answer with and without the slash (a rule
# pair would make Werkzeug redirect one to the other).
@bp.route(BUILD_RULE + "/", methods=METHODS, strict_slashes=False)
@bp.route(BUILD_RULE + "/steps/", methods=METHODS, strict_slashes=False)
@bp.route(BUILD_RULE + "/steps/<path:_rest>", methods=METHODS)
def build_subpage(**_parts: Any) -> Response:
    return dispatch()


# -- links ---------------------------------------------------------------------------------------

@dataclass
class Links:
    """Relative links from the current page (``root`` is its way back to the site root)."""

    root: str
    builder_name: str
    number: int

    @property
    def builder(self) -> str:
        return f"{self.root}builders/{segment(self.builder_name)}"

    @property
    def build(self) -> str:
        return f"{self.builder}/builds/{self.number}"

    def step(self, step: str) -> str:
        return f"{self.build}/steps/{segment(step)}"

    def log(self, step: str, log: str) -> str:
        return f"{self.step(step)}/logs/{segment(log)}"

    def slave(self, name: str) -> str:
        return f"{self.root}buildslaves/{segment(name)}"

    def change(self, number: int) -> str:
        return f"{self.root}changes/{number}"


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
        builder, build = detail.find_build(conn, target.builder, target.number)
        expected = estimates.expected_durations(conn, [builder]).get(builder.id) \
            if build is not None and not build.is_finished else None
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
        eta=estimates.eta_seconds(expected, build.started_at, now))


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


__all__ = ["Links", "Target", "bp", "dispatch", "not_found", "parse_target",
           "request_segments", "segment"]
