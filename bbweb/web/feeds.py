"""``/rss`` (RSS 2.0) and ``/atom`` (Atom 1.0): the newest finished builds.

Each feed is mounted only when its name is in ``WebStatus(provide_feeds=…)``; any sub-path
answers the same feed. Selection: the newest :data:`FEED_SIZE` finished builds of each
selected builder (``builder=``/``show=``, ``category=``), filtered by ``failures_only=``
and ``project=``, merged newest finish first and cut to :data:`FEED_SIZE`. The queries are
bounded by that count whatever the history: one window query for all builders, the
details of the chosen builds, and a few chunks from the end of each failed step's log.

Differences from 0.8 (see ``docs/compat.md``): the entry id is the build's absolute URL
(0.8's ``tag:`` id from the finish second collided for builds finishing together), the
content type is ``application/rss+xml`` / ``application/atom+xml``, and characters XML
cannot carry (control characters in log text) are dropped rather than making the feed
unparseable.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from email.utils import formatdate
from urllib.parse import quote

from flask import Blueprint, Response, request
from markupsafe import Markup, escape
from sqlalchemy.engine import Connection

from bbweb.plugins.site import site
from bbweb.status import overview, queries
from bbweb.status.logstream import log_tail
from bbweb.status.records import BuildInfo, SourceStampInfo
from bbweb.values.results import FAILURE, SKIPPED, SUCCESS, WARNINGS, result_name

FEED_SIZE = 25
ATOM_NS = "http://www.w3.org/2005/Atom"
FALSE_WORDS = {"false", "0", "no", "off"}
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """``value`` as text XML 1.0 can carry: characters it forbids are dropped."""
    return _NOT_XML.sub("", "" if value is None else str(value))


def make_blueprint(kinds: Iterable[str]) -> Blueprint:
    """A blueprint with the views of ``kinds`` (``"rss"``, ``"atom"``): endpoints
    ``feeds.rss`` and ``feeds.atom``. A fresh one per application, since which views
    exist depends on the configuration."""
    bp = Blueprint("feeds", __name__)
    configured_at = time.time()  # feed-level publication date: when the site was set up
    kinds = set(kinds)

    if "rss" in kinds:
        def rss(subpath: str = "") -> Response:
            return Response(render_rss(select_builds(), configured_at),
                            content_type="application/rss+xml; charset=utf-8")
        bp.add_url_rule("/rss", "rss", rss)
        bp.add_url_rule("/rss/<path:subpath>", "rss", rss)

    if "atom" in kinds:
        def atom(subpath: str = "") -> Response:
            return Response(render_atom(select_builds(), configured_at),
                            content_type="application/atom+xml; charset=utf-8")
        bp.add_url_rule("/atom", "atom", atom)
        bp.add_url_rule("/atom/<path:subpath>", "atom", atom)
    return bp


# -- selection ----------------------------------------------------------------------------------

def _multi(*names: str) -> list[str]:
    return [v for n in names for v in request.args.getlist(n) if v]


def select_builds() -> list[FeedEntry]:
    """The builds the request's arguments ask for, newest finish first, with what their
    entries show."""
    s = site()
    cfg = s.config
    names = [n for n in dict.fromkeys(_multi("builder", "show")) if n in cfg.builders]
    if not names and not _multi("builder", "show"):
        names = sorted(cfg.builders)
    categories = set(_multi("category"))
    if categories:
        names = [n for n in names if cfg.builders[n].category in categories]
    failures_only = request.args.get("failures_only", "false").lower() not in FALSE_WORDS
    projects = set(_multi("project"))
    with s.db.read() as conn:
        rows = queries.builder_rows(conn, names)
        # chosen from light rows; only the builds shown are read whole
        candidates = overview.finished_build_rows(conn, rows.values(), FEED_SIZE)
        if failures_only:
            candidates = [r for r in candidates if r.results == FAILURE]
        if projects:
            props = overview.build_property_values(conn, [r.id for r in candidates],
                                                   ["project"])
            candidates = [r for r in candidates
                          if any(overview.property_text(v) in projects
                                 for _n, v, _s in props.get(r.id, []))]
        chosen = [r.id for r in overview.merge_by_finish([candidates], FEED_SIZE)]
        by_id = queries.builds_by_id(conn, chosen)
        found = [by_id[i] for i in chosen if i in by_id]
        return [FeedEntry(b, _log_tails(conn, b)) for b in found]


class FeedEntry:
    """A build and the tails of its failed steps' logs: [(log name, text or None)]."""

    def __init__(self, build: BuildInfo, tails: list[tuple[str, str | None]]):
        self.build = build
        self.tails = tails


def failed_steps(build: BuildInfo) -> list:
    return [s for s in build.steps
            if s.results is not None and s.results not in (SUCCESS, WARNINGS, SKIPPED)]


def _log_tails(conn: Connection, build: BuildInfo) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for step in failed_steps(build):
        for lg in step.logs:
            out.append((lg.name, log_tail(conn, lg.id)))
        if not step.logs:
            out.append((step.name, None))
    return out


# -- content ------------------------------------------------------------------------------------

def build_url(base: str, build: BuildInfo) -> str:
    return f"{base}builders/{quote(build.builder, safe='')}/builds/{build.number}"


def entry_title(build: BuildInfo) -> str:
    return f'Builder "{build.builder}": {result_name(build.results)}'


def _revision_text(build: BuildInfo, ss: SourceStampInfo) -> str:
    if not (ss.revision or ss.branch or ss.patch is not None or ss.changes):
        return "Latest revision"
    got = overview._got_revision(build, ss.codebase)
    rev = got or ss.revision or "Latest revision"
    return rev + (" (plus patch)" if ss.patch is not None else "")


def entry_html(entry: FeedEntry, base: str, title: str) -> str:
    """The entry's body as HTML; every piece of user text is escaped."""
    b = entry.build
    url = build_url(base, b)
    lines = [
        Markup("<p>Date: {}<br>").format(formatdate(b.finished_at or b.started_at,
                                                     usegmt=True)),
        Markup('Project home: <a href="{}">{}</a><br>').format(base, title),
        Markup('Builder summary: <a href="{}">{}</a><br>').format(
            f"{base}builders/{quote(b.builder, safe='')}", b.builder),
        Markup('Build details: <a href="{}">Build {}</a><br>').format(url, b.number),
        Markup("Result: {}<br>").format(result_name(b.results)),
        Markup("Reason: {}<br>").format(b.reason),
        Markup("Author list: {}<br>").format(", ".join(b.blame)),
        Markup("Failed step(s): {}<br>").format(
            ", ".join(s.name for s in failed_steps(b))),
        Markup("</p>"),
    ]
    for ss in b.sourcestamps:
        lines.append(Markup("<p>"))
        if ss.codebase:
            lines.append(Markup("Codebase: {}<br>").format(ss.codebase))
        lines.append(Markup("Repository: {}<br>").format(ss.repository or ""))
        lines.append(Markup("Branch: {}<br>").format(ss.branch or ""))
        lines.append(Markup("Revision: {}<br>").format(_revision_text(b, ss)))
        lines.append(Markup("</p>"))
    if entry.tails:
        lines.append(Markup("<p><strong>Last lines of the build log:</strong></p><pre>"))
        for name, text in entry.tails:
            lines.append(Markup('Last lines of build log "{}":\n').format(name))
            lines.append(escape(text if text is not None else
                                "** log file not available **") + Markup("\n"))
        lines.append(Markup("</pre>"))
    return xml_text("".join(str(x) for x in lines))


def _sub(parent: ET.Element, tag: str, text: object = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = xml_text(text)
    return el


def _atom_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def render_rss(entries: list[FeedEntry], configured_at: float) -> bytes:
    cfg = site().config
    base = cfg.buildbotURL
    ET.register_namespace("atom", ATOM_NS)
    rss = ET.Element("rss", {"version": "2.0"})
    ch = _sub(rss, "channel")
    _sub(ch, "title", f"Build status of {cfg.title}")
    _sub(ch, "link", base)
    _sub(ch, f"{{{ATOM_NS}}}link", href=base + "rss", rel="self",
         type="application/rss+xml")
    _sub(ch, "description", "List of builds")
    _sub(ch, "language", "en-us")
    _sub(ch, "pubDate", formatdate(configured_at, usegmt=True))
    for e in entries:
        b = e.build
        item = _sub(ch, "item")
        _sub(item, "title", entry_title(b))
        _sub(item, "link", build_url(base, b))
        _sub(item, "description", entry_html(e, base, cfg.title))
        _sub(item, "pubDate", formatdate(b.finished_at or b.started_at, usegmt=True))
        _sub(item, "guid", build_url(base, b), isPermaLink="true")
    return ET.tostring(rss, encoding="utf-8", xml_declaration=True)


def render_atom(entries: list[FeedEntry], configured_at: float) -> bytes:
    cfg = site().config
    base = cfg.buildbotURL
    ET.register_namespace("", ATOM_NS)

    def q(tag: str) -> str:
        return f"{{{ATOM_NS}}}{tag}"

    feed = ET.Element(q("feed"))
    _sub(feed, q("title"), f"Build status of {cfg.title}")
    _sub(feed, q("link"), href=base)
    _sub(feed, q("id"), base)
    _sub(feed, q("subtitle"), "List of builds")
    _sub(feed, q("updated"), _atom_time(configured_at))
    author = _sub(feed, q("author"))
    _sub(author, q("name"), "BuildBot")
    for e in entries:
        b = e.build
        entry = _sub(feed, q("entry"))
        _sub(entry, q("title"), entry_title(b))
        _sub(entry, q("link"), href=build_url(base, b))
        _sub(entry, q("id"), build_url(base, b))
        _sub(entry, q("updated"), _atom_time(b.finished_at or b.started_at))
        _sub(entry, q("content"), entry_html(e, base, cfg.title), type="html")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


__all__ = ["FEED_SIZE", "make_blueprint", "xml_text"]
