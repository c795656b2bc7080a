"""``/console``: one row per change (newest first), one column per builder grouped by
category, each box coloured by what the build containing the change did.

The data comes from :mod:`bbweb.status.console` in a fixed number of statements. What
differs from 0.8 (ordering by arrival instead of by revision string, rows for forced
builds, filters applied before ``revs`` is counted, a plain form instead of JavaScript) is
listed in ``docs/compat.md`` under "Console".
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, request
from markupsafe import Markup, escape

from bbweb.mastercfg.builders import BuilderConfig
from bbweb.plugins.site import site
from bbweb.status import console as data
from bbweb.status.naming import natural_key
from bbweb.status.records import ChangeInfo
from bbweb.web import decorations, rendering
from bbweb.web.helpers import not_found
from bbweb.web.rendering import eta_text, render_page

bp = Blueprint("console", __name__)

METHODS = ["GET", "POST"]
DEFAULT_RELOAD = 60  # seconds; ``reload=0`` turns the refresh off
MIN_RELOAD = 15
NO_CACHE = {"Cache-Control": "no-cache"}
_UNSIGNED = re.compile(r"\s*\+?\d{1,9}\s*")

# legend: (class, label, explanation)
LEGEND = [
    ("success", "Passed", "The build containing this change passed."),
    ("failure", "Failed", "The build containing this change failed, and the build before "
                          "it did not: this change probably broke it."),
    ("warnings", "Warnings", "The build containing this change passed with warnings."),
    ("failure-again", "Failed again", "The build containing this change failed, and so "
                                      "did the build before it."),
    ("running", "Running", "The build containing this change is running."),
    ("exception", "Exception", "The build containing this change ended with an exception "
                               "(or was skipped or cancelled)."),
    ("offline", "Offline", "None of the builder's slaves is connected."),
    ("notstarted", "No data", "No build of this builder contains this change yet."),
]
CSS_WORDS = {css: label for css, label, _ in LEGEND}
CSS_WORDS["notinbuilder"] = "Not built here"


class BadArgument(ValueError):
    pass


def _count_arg(name: str, default: int, *, minimum: int) -> int:
    value = request.args.get(name)
    if value is None:
        return default
    if not _UNSIGNED.fullmatch(value) or int(value) < minimum:
        raise BadArgument(f"{name} must be an integer of at least {minimum}, not {value!r}")
    return int(value)


def _single(name: str) -> str | None:
    value = request.args.get(name)
    return value if value else None


@dataclass
class Row:
    kind: str  # "change", "forced" or "scheduled"
    revision: Markup
    number: int | None
    author: Markup
    when: float
    comments: Markup
    boxes: Markup
    failures: list[FailureLine]
    stamps: list[data.Stamp] = field(default_factory=list)


@dataclass
class FailureLine:
    """"BUILDER: step text - logs" under a row, with the links ready (relative to the
    site root)."""

    builder: str
    build_href: str
    text: str
    logs: list[tuple[str, str]]


def _failure_lines(failures: list[data.FailedStep], segs: dict[str, str]
                   ) -> list[FailureLine]:
    out = []
    for f in failures:
        build = f"builders/{segs[f.builder]}/builds/{f.number}"
        step = f"{build}/steps/{quote(f.step, safe='')}/logs/"
        out.append(FailureLine(f.builder, build, " ".join(f.text) or f.step,
                               [(lg, step + quote(lg, safe="")) for lg in f.logs]))
    return out


# A console of 40 rows and 50 builders has 2,000 boxes: they are formatted here, each with
# its text escaped, rather than through a template macro call per box (several times
# slower). The class names come from our own vocabulary; the builder name is quoted in the
# URL and escaped in the tooltip.

def box_html(css: str, href: str | None, title: str, to_root: str) -> Markup:
    """One box: a table cell of class ``cbox CSS`` holding a link (or not) whose tooltip
    (also its accessible name) says the builder and the result in words."""
    if href is None:
        return Markup(f'<td class="cbox {css}"><span title="{escape(title)}"></span></td>')
    return Markup(f'<td class="cbox {css}"><a href="{to_root}{escape(href)}" '
                  f'title="{escape(title)}"></a></td>')


def _cell_box(name: str, seg: str, cell: data.Cell, now: float, to_root: str) -> Markup:
    build = cell.build
    word = CSS_WORDS.get(cell.css, cell.css)
    if build is None:
        if cell.css == data.NOT_IN_BUILDER:
            return box_html(cell.css, None, f"{name}: not built here", to_root)
        return box_html(cell.css, f"builders/{seg}", f"{name}: no data, not built yet",
                        to_root)
    if not build.is_finished:
        title = f"{name} #{build.number}: running, {eta_text(cell.eta, now)}"
    else:
        title = f"{name} #{build.number}: {word}, {' '.join(build.text) or word}"
    return box_html(cell.css, f"builders/{seg}/builds/{build.number}", title, to_root)


def _revision(change: ChangeInfo) -> Markup:
    s = site()
    url = change.revlink or decorations.revision_url(
        change.revision, change.repository, s.config.web.revlink, s.config.revlink)
    return decorations.shortrev_markup(change.revision, url)


def _rows(found: data.ConsoleData, names: list[str], now: float, to_root: str) -> list[Row]:
    web = site().config.web
    segs = {n: quote(n, safe="") for n in names}
    out = []
    for row in found.rows:
        boxes = Markup("").join(_cell_box(n, segs[n], row.cells[n], now, to_root)
                                for n in names)
        if row.change is not None:
            c = row.change
            out.append(Row("change", _revision(c), c.number, decorations.user_markup(c.author),
                           c.when, decorations.comment_markup(c.comments, web.changecommentlink,
                                                              c.project),
                           boxes, _failure_lines(row.failures, segs)))
        elif row.buildset is not None:
            bs = row.buildset
            stamps = [s for s in bs.stamps if s.branch or s.revision]
            out.append(Row("forced" if bs.forced else "scheduled", Markup(""), None,
                           Markup(""), bs.submitted_at, Markup("{}").format(bs.reason),
                           boxes, _failure_lines(row.failures, segs), stamps))
    return out


def _groups(names: list[str]) -> list[tuple[str, list[str]]]:
    """Builders by display category (categories sorted), natural order within each."""
    cfg = site().config
    out: dict[str, list[str]] = {}
    for name in names:
        out.setdefault(data.display_category(cfg.builders[name].category), []).append(name)
    return sorted(out.items())


@dataclass
class _Asked:
    """What a request to /console asks for."""

    revs: int  # rows at most
    reload: int  # seconds between refreshes, 0 for none
    builders: list[str]  # as given with builder= (none: every builder)
    categories: list[str]
    names: list[str]  # the columns' builders, sorted
    filters: data.ConsoleFilter


@bp.route("/console", methods=METHODS)
def console() -> Response:
    """The console: the request's arguments, the status layer's data for them, the page."""
    s = site()
    cfg = s.config
    asked = _asked(cfg.builders)
    if isinstance(asked, Response):
        return asked
    now = time.time()
    with s.db.read() as conn:
        found = data.console_data(conn, cfg, asked.names, revs=asked.revs,
                                  filters=asked.filters,
                                  order_by_time=cfg.web.order_console_by_time, now=now)
    return _page(asked, found, now, cfg.title, cfg.web.order_console_by_time)


def _asked(configured: Mapping[str, BuilderConfig]) -> _Asked | Response:
    """The arguments, or the answer refusing them (400 for a bad count, 404 for an unknown
    builder)."""
    try:
        revs = min(_count_arg("revs", data.DEFAULT_REVS, minimum=1), data.MAX_REVS)
        reload_arg = _count_arg("reload", DEFAULT_RELOAD, minimum=0)
    except BadArgument as exc:
        return render_page("error.html", "Bad Request", status=400, message=str(exc),
                           headers=NO_CACHE)
    asked = list(dict.fromkeys(n for n in request.args.getlist("builder") if n))
    unknown = [n for n in asked if n not in configured]
    if unknown:
        return not_found(f"No such builder {unknown[0]!r}.")
    categories = list(dict.fromkeys(c for c in request.args.getlist("category") if c))
    names = sorted(asked or configured, key=natural_key)
    if categories:
        names = [n for n in names if configured[n].category in categories]
    authors = tuple(dict.fromkeys(n for n in request.args.getlist("name") if n))
    filters = data.ConsoleFilter(branch=_single("branch"), repository=_single("repository"),
                                 project=_single("project"), codebase=_single("codebase"),
                                 authors=authors)
    return _Asked(revs, reload_arg, asked, categories, names, filters)


def _page(asked: _Asked, found: data.ConsoleData, now: float, site_title: str | None,
          by_time: bool) -> Response:
    """The page: the builders' status row, the rows grouped by category, the links for
    more rows."""
    revs, names, authors = asked.revs, asked.names, asked.filters.authors
    groups = _groups(names)
    ordered = [n for _cat, members in groups for n in members]
    to_root = rendering.to_root()
    by_name = {b.name: b for b in found.builders}
    status_row = Markup("").join(
        box_html(by_name[n].css, f"builders/{quote(n, safe='')}",
                 f"{n}: {CSS_WORDS.get(by_name[n].css, by_name[n].css)}", to_root)
        for n in ordered)
    keep = [(k, v) for k, v in request.args.items(multi=True) if k != "name"]
    title = f"BuildBot: {site_title}" if site_title else "BuildBot"
    return render_page(
        "console.html", title, headers=NO_CACHE,
        refresh=max(asked.reload, MIN_RELOAD) if asked.reload else None,
        rows=_rows(found, ordered, now, to_root), status_row=status_row,
        groups=[(cat, len(members)) for cat, members in groups], legend=LEGEND, revs=revs,
        filters=asked.filters, categories=asked.categories, builders_asked=asked.builders,
        personalized=authors[0] if authors else "", keep_args=keep,
        show_more=found.more and revs < data.MAX_REVS,
        more="console?" + urlencode([*((k, v) for k, v in keep if k != "revs"),
                                     *(("name", a) for a in authors),
                                     ("revs", str(min(revs * 2, data.MAX_REVS)))]),
        by_time=by_time, num_columns=2 + len(names))
