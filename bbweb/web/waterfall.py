"""``/waterfall`` and ``/waterfall/help``: time runs down the page, one column
per builder plus the changes and the time columns.

The view parses the arguments (bad numbers are a 400 page, never a server error), asks
:mod:`bbweb.status.waterfall` for the builder heads and the rows, and renders. Differences
from 0.8 are listed in ``docs/compat.md``: builder names are escaped, ``category=`` no
longer empties the changes column, the next page neither repeats nor skips a row, and
``num_events`` counts rows exactly.

The event grid (a couple of thousand boxes on a default page) is written as HTML by
:class:`GridWriter`, not by the template: a template branch or macro per box cost several
times more than the rest of the page.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, request
from markupsafe import Markup, escape
from sqlalchemy.engine import Connection
from werkzeug.datastructures import MultiDict

from bbweb.mastercfg.master import MasterConfig
from bbweb.plugins.site import site
from bbweb.status import eventstream, overview
from bbweb.status import waterfall as wf
from bbweb.status import waterfall_layout as wl
from bbweb.status.naming import natural_key
from bbweb.status.records import ChangeInfo
from bbweb.values.numbers import is_int_text
from bbweb.values.results import Results as RESULT_NAMES
from bbweb.web import decorations, timefmt
from bbweb.web.events import live_page
from bbweb.web.helpers import builder_infos, not_found
from bbweb.web.rendering import render_page, result_class, to_root

bp = Blueprint("waterfall", __name__)

METHODS = ["GET", "POST"]
NO_CACHE = {"Cache-Control": "no-cache"}
HARD_MAX_EVENTS = 2000  # num_events ceiling when WebStatus sets no num_events_max
RELOAD_CHOICES = [("none", "None"), ("60", "60 seconds"), ("300", "5 minutes"),
                  ("600", "10 minutes")]
_INT = re.compile(r"\s*[-+]?\d+\s*")
_TIME = re.compile(r"\s*[-+]?\d+(?:\.\d+)?\s*")


class BadArgument(ValueError):
    """A query argument that cannot mean anything; its message names the argument."""


def _values(args: MultiDict, *names: str) -> list[str]:
    """Non-empty values of the (repeatable) arguments, first occurrence order, deduplicated."""
    return list(dict.fromkeys(v for n in names for v in args.getlist(n) if v.strip()))


def _number(args: MultiDict, name: str, *, integer: bool = True) -> float | None:
    raw = args.get(name, "")
    if not raw.strip():
        return None
    if not (_INT if integer else _TIME).fullmatch(raw):
        kind = "an integer" if integer else "a time in seconds since the epoch"
        raise BadArgument(f"{name} must be {kind}, not {raw!r}")
    value = float(raw) if not integer else int(raw)
    if abs(value) > 1e12:
        raise BadArgument(f"{name} is out of range: {raw!r}")
    return value


def _flag(args: MultiDict, name: str) -> bool:
    return args.get(name, "").strip().lower() == "true"


@dataclass
class WaterfallArgs:
    """The page's arguments, checked."""

    builders: list[str]
    categories: list[str]
    branches: list[str]
    committers: list[str]
    projects: list[str]
    failures_only: bool
    show_events: bool
    last_time: float | None
    first_time: float | None
    show_time: float | None
    num_events: int
    nobubble: bool


def parse_args(args: MultiDict, cfg: MasterConfig) -> WaterfallArgs:
    """Check the arguments; raises :class:`BadArgument` with a message for the 400 page."""
    web = cfg.web
    num = _number(args, "num_events")
    if num is None:
        num_events = web.num_events
    elif num <= 0:
        raise BadArgument(f"num_events must be a positive integer, not {args['num_events']!r}")
    else:
        num_events = int(num)
    num_events = min(num_events, web.num_events_max or max(HARD_MAX_EVENTS, web.num_events))
    show_time = _number(args, "show_time")
    if show_time is not None and show_time < 0:
        raise BadArgument("show_time must not be negative")
    nobubble = _number(args, "nobubble")
    return WaterfallArgs(
        builders=_values(args, "builder", "show"),
        categories=_values(args, "category"),
        branches=_values(args, "branch"),
        committers=_values(args, "committer"),
        projects=_values(args, "project"),
        failures_only=_flag(args, "failures_only"),
        show_events=_flag(args, "show_events"),
        last_time=_number(args, "last_time", integer=False),
        first_time=_number(args, "first_time", integer=False),
        show_time=show_time,
        num_events=num_events,
        nobubble=bool(nobubble),
    )


def bad_request(message: str) -> Response:
    return render_page("error.html", "Bad Request", status=400, message=message)


def _url(args: MultiDict, drop: tuple[str, ...] = (), **replace: str) -> str:
    """``waterfall?…`` with the current arguments, some dropped or replaced."""
    items = [(k, v) for k, v in args.items(multi=True)
             if k not in drop and k not in replace and k != "alert_msg"]
    items.extend(replace.items())
    return "waterfall" + ("?" + urlencode(items) if items else "")


def _next_last_time(when: float) -> str:
    """The next page's ``last_time``: the float just below the bottom row's time, so that
    row is not repeated and nothing older is skipped (a whole second, or a millisecond,
    lower lost the events in between: commit times are often whole seconds, other events
    are not). ``repr`` round-trips the float exactly (times near 0 would be in exponent
    form, which ``last_time`` does not accept)."""
    below = math.nextafter(when, -math.inf)
    text = repr(below)
    return f"{below:.17f}" if "e" in text else text


def change_revision(change: Any) -> Markup:
    """A change's short revision, linked through its own revlink or the site's."""
    s = site()
    url = change.revlink or decorations.revision_url(
        change.revision, change.repository, s.config.web.revlink, s.config.revlink)
    return decorations.shortrev_markup(change.revision, url)


def change_summary(change: Any) -> Markup:
    """The first line of a change's comment (cut at 80 characters) with the site's
    ``changecommentlink`` applied."""
    line = (change.comments or "").strip().splitlines()[0:1]
    text = line[0] if line else ""
    if len(text) > 80:
        text = text[:77] + "..."
    s = site()
    return decorations.comment_markup(text, s.config.web.changecommentlink, change.project)


RESULT_CLASSES = {i: result_class(i) for i in range(len(RESULT_NAMES))}


def _rowspan(n: int) -> str:
    return f' rowspan="{n}"' if n > 1 else ""


class GridWriter:
    """The event grid's ``<tr>`` rows as HTML, written here rather than by a template: a page
    has a couple of thousand boxes, and a macro or template branch per box costs several
    times more than string formatting. Every text from the database goes through
    :func:`markupsafe.escape`; links are made from one root prefix and names quoted once
    per page (builders, step and log names repeat a lot)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.build_urls: dict[int, str] = {}
        self.builders: dict[str, str] = {}
        self.names: dict[str, str] = {}  # step/log name -> its quoted path segment
        self.texts: dict[tuple[Any, str], str] = {}  # (step text, name) -> the lines' HTML
        self.log_names: dict[str, str] = {}

    def build_url(self, build: wf.Build) -> str:
        url = self.build_urls.get(build.id)
        if url is None:
            seg = self.builders.get(build.builder)
            if seg is None:
                seg = self.builders[build.builder] = quote(build.builder, safe="")
            url = self.build_urls[build.id] = str(
                escape(f"{self.root}builders/{seg}/builds/{build.number}"))
        return url

    def segment(self, name: str) -> str:
        seg = self.names.get(name)
        if seg is None:
            seg = self.names[name] = str(escape(quote(name, safe="")))
        return seg

    def step(self, cell: wl.Cell, build: wf.Build, st: wf.Step) -> str:
        url = f"{self.build_url(build)}/steps/{self.segment(st.name)}"
        css = ("running" if st.finished_at is None
               else RESULT_CLASSES.get(st.results) or "exception")  # type: ignore[arg-type]
        key = (st.text_json if st.text else None, st.name)
        lines = self.texts.get(key)
        if lines is None:
            lines = self.texts[key] = "<br>".join(str(escape(line))
                                                  for line in st.text or [st.name])
        out = [f'<td class="BuildStep box {css}"{_rowspan(cell.rowspan)}>'
               f'<a href="{url}">{lines}</a>']
        for name, viewable in st.logs:
            shown = self.log_names.get(name)
            if shown is None:
                shown = self.log_names[name] = str(escape(name))
            if viewable:
                out.append(f'<br><a href="{url}/logs/{self.segment(name)}">{shown}</a>')
            else:
                out.append(f"<br><a>{shown}</a>")
        for name, link in (st.urls or {}).items():
            a = decorations.link(str(link), str(name), None, "BuildStep external")
            out.append(f"<br>[{a}]")
        out.append("</td>")
        return "".join(out)

    def change(self, cell: wl.Cell, ch: ChangeInfo) -> str:
        html = (f'<td class="Change box"{_rowspan(cell.rowspan)}>'
                f'<a href="{self.root}changes/{ch.number}" title="{escape(ch.comments)}">'
                f"{decorations.user_markup(ch.author)}</a>")
        if ch.revision:
            html += f"<br>{change_revision(ch)}"
        summary = change_summary(ch)
        if summary:
            html += f'<br><span class="comment">{summary}</span>'
        return html + "</td>"

    def rows(self, grid: list[list[wl.Cell]]) -> Markup:
        """``<tr>…</tr>`` per table row, each on its own line."""
        out = []
        for row in grid:
            out.append("<tr>")
            for c in row:
                k = c.kind
                e = c.event
                if k == "step":
                    out.append(self.step(c, e.build, e.step))  # type: ignore[union-attr]
                elif k == "empty" or k == "spacer":
                    out.append(f"<td{_rowspan(c.rowspan)}></td>")
                elif k == "build":
                    b = e.build  # type: ignore[union-attr]
                    out.append(f'<td class="BuildStep box start"{_rowspan(c.rowspan)}>'
                               f'<a href="{self.build_url(b)}" title="Reason: '
                               f'{escape(b.reason)}">Build {b.number}</a></td>')
                elif k == "time":
                    day = f"{escape(c.day)}<br>{escape(c.date)}<br>" if c.day else ""
                    out.append(f'<td class="Time"{_rowspan(c.rowspan)}>{day}'
                               f"{escape(c.clock)}</td>")
                elif k == "change":
                    out.append(self.change(c, e.change))  # type: ignore[union-attr]
                elif k == "point":
                    lines = "<br>".join(str(escape(line))
                                        for line in e.text)  # type: ignore[union-attr]
                    out.append(f'<td class="Event box"{_rowspan(c.rowspan)}>{lines}</td>')
            out.append("</tr>\n")
        return Markup("".join(out))


@bp.route("/waterfall", methods=METHODS)
def waterfall() -> Response:
    """The waterfall: the request's arguments, the builders' heads and the rows the status
    layer reads for them, the page."""
    s = site()
    cfg = s.config
    try:
        a = parse_args(request.args, cfg)
    except BadArgument as exc:
        return bad_request(str(exc))
    unknown = [n for n in a.builders if n not in cfg.builders]
    if unknown:
        return not_found(f"No such builder {unknown[0]!r}.")
    names = _columns(a, cfg)
    now = time.time()
    with s.db.read() as conn:
        after = eventstream.position_in(conn)  # first: nothing falls between it and the data
        names, heads, etas, page = _read(conn, cfg, a, names, now)
    live = None
    if a.last_time is None:  # the newest rows: the page follows what happens
        shown = names if len(names) < len(cfg.builders) else []
        live = live_page(after, kind="builds,steps,slaves,changes", builder=shown,
                         delay_ms=3000)
    return _page(a, names, heads, etas, page, now, cfg.title, live)


def _columns(a: WaterfallArgs, cfg: MasterConfig) -> list[str]:
    """The builders shown, in order: those asked for (all by default) in the categories
    asked for."""
    names = a.builders or list(cfg.builders)
    if a.categories:
        names = [n for n in names if cfg.builders[n].category in a.categories]
    return sorted(names, key=natural_key)


def _read(conn: Connection, cfg: MasterConfig, a: WaterfallArgs, names: list[str],
          now: float) -> tuple[list[str], dict[str, wf.BuilderHead],
                               dict[tuple[str, int], float | None], wf.Waterfall]:
    """The builders' heads (their state, last build and ETAs), then the page's rows:
    (the columns, without the passing builders when only failing ones are asked for,
    heads, ETAs, rows)."""
    branches = overview.branch_filter(a.branches)
    filters = wf.Filters(branches=branches, committers=set(a.committers) or None,
                         projects=set(a.projects) or None)
    lower = wf.lower_bound(last_time=a.last_time, first_time=a.first_time,
                           show_time=a.show_time, now=now,
                           implicit=bool(a.branches or a.committers))
    rows = builder_infos(conn, names)
    heads, etas = wf.builder_heads(conn, cfg, rows, names, branches=branches,
                                   need_failing=a.failures_only, now=now)
    if a.failures_only:
        names = [n for n in names if heads[n].failing]
    page = wf.load(conn, [rows[n] for n in names],
                   {n: cfg.builders[n].slavenames for n in names}, filters, now=now,
                   num_events=a.num_events, last_time=a.last_time, lower=lower,
                   show_events=a.show_events)
    return names, heads, etas, page


def _page(a: WaterfallArgs, names: list[str], heads: dict[str, wf.BuilderHead],
          etas: dict[tuple[str, int], float | None], page: wf.Waterfall, now: float,
          site_title: str | None, live: dict[str, str] | None = None) -> Response:
    """The page: the heads, the rows laid out as a table, the links to the next page, to
    stop reloading and to the help page."""
    grid = wl.layout_table(page.rows.chunks, page.rows.next_events, nobubble=a.nobubble,
                           today=now)
    grid_rows = GridWriter(to_root()).rows(grid)
    raw_reload = request.args.get("reload", "")
    # as the layout's refresh; ASCII only: "²".isdigit() is true but int("²") fails
    reloading = is_int_text(raw_reload) and int(raw_reload) > 0
    query = urlencode([(k, v) for k, v in request.args.items(multi=True) if k != "alert_msg"])
    title = f"BuildBot: {site_title}" if site_title else "BuildBot"
    return render_page(
        "waterfall.html", title, headers=NO_CACHE,
        heads=[heads[n] for n in names], etas=etas, grid_rows=grid_rows, empty=not grid,
        upcoming={n: heads[n].upcoming for n in names},
        tz=timefmt.tz_name(now),
        next_page=(_url(request.args, last_time=_next_last_time(page.bottom))
                   if page.more and page.bottom is not None else None),
        stop_reload=_url(request.args, drop=("reload",)) if reloading else None,
        help_url="waterfall/help" + ("?" + query if query else ""), live=live)


@bp.route("/waterfall/help", methods=METHODS)
def help() -> Response:  # noqa: A001 - the page is called help
    cfg = site().config
    args = request.args
    all_builders = sorted(cfg.builders, key=natural_key)
    shown = set(_values(args, "builder", "show"))
    categories = sorted({b.category for b in cfg.builders.values() if b.category})
    reload_now = args.get("reload", "").strip()
    times = list(RELOAD_CHOICES)
    if reload_now and reload_now not in {v for v, _ in times}:
        times.insert(0, (reload_now, f"{reload_now} seconds"))
    return render_page(
        "waterfall_help.html", "Waterfall Help",
        show_events_checked=_flag(args, "show_events"),
        failures_only=_flag(args, "failures_only"),
        branches=_values(args, "branch"), committers=_values(args, "committer"),
        projects=_values(args, "project"),
        show_builders=shown, all_builders=all_builders,
        show_categories=set(_values(args, "category")), all_categories=categories,
        times=times, current_reload_time=reload_now or "none",
        num_events=args.get("num_events", ""), show_time=args.get("show_time", ""),
        last_time=args.get("last_time", ""), first_time=args.get("first_time", ""),
        nobubble=args.get("nobubble", ""), default_num_events=cfg.web.num_events)
