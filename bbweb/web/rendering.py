"""Rendering HTML pages: the template search path, the filters templates use, the context
every page gets, and the site's 404 page.

Templates are looked up in ``BASEDIR/templates`` first (a file there overrides the
built-in of the same name, picked up without a restart), then in each of
``WebStatus(jinja_loaders=[…])``, then in bbweb's own. Autoescaping is on everywhere:
filters that add links return markup in which the user's text is already escaped.

Links are relative (``to_root`` is ``./``, ``../``, …), so the site works unchanged
when a reverse proxy mounts it under a sub-path.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, Response, current_app, render_template, request
from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, PackageLoader

from bbweb import __version__
from bbweb.plugins.site import Site, site
from bbweb.values.numbers import is_int_text
from bbweb.values.results import result_name
from bbweb.web import decorations, timefmt

RESULT_CLASSES = ["success", "warnings", "failure", "skipped", "exception", "retry",
                  "cancelled"]


def result_class(result: int | None, running: str = "running") -> str:
    """The CSS class (and word) for a result; ``running`` for one not finished yet."""
    if result is None:
        return running
    return RESULT_CLASSES[result] if 0 <= result < len(RESULT_CLASSES) else "exception"


def to_root(path: str | None = None) -> str:
    """The relative prefix from the current page to the site root: ``/builders`` →
    ``./``, ``/builders/x`` → ``../``, ``/builders/x/`` → ``../../``."""
    path = request.path if path is None else path
    depth = path.count("/") - 1
    return "../" * depth if depth > 0 else "./"


def _template_loader(s: Site) -> BaseLoader:
    loaders: list[BaseLoader] = [FileSystemLoader(os.path.join(s.basedir, "templates"))]
    loaders.extend(s.config.web.jinja_loaders)
    loaders.append(PackageLoader("bbweb", "templates"))
    return ChoiceLoader(loaders)


def eta_text(seconds: float | None, now: float | None = None) -> str:
    """``ETA: 14:03:11 [2 mins, 5 secs]``, ``ETA: any moment now`` once overdue, or
    ``ETA: no estimate``."""
    if seconds is None:
        return "ETA: no estimate"
    if seconds <= 0:
        return "ETA: any moment now"
    at = (time.time() if now is None else now) + seconds
    return f"ETA: {timefmt.clock(at)} [{timefmt.duration(seconds)}]"


def init_templates(app: Flask) -> None:
    """Install the loader chain, filters and globals on ``app``."""
    s: Site = app.extensions["bbweb"]
    app.jinja_loader = _template_loader(s)
    app.config["TEMPLATES_AUTO_RELOAD"] = True
    web = s.config.web
    cfg = s.config

    def revlink_url(revision: str | None, repository: str | None = None) -> str | None:
        return decorations.revision_url(revision, repository, web.revlink, cfg.revlink)

    app.jinja_env.filters.update({
        "revlink": lambda rev, repo="": decorations.revlink_markup(
            rev, revlink_url(rev, repo)),
        "shortrev": lambda rev, repo="": decorations.shortrev_markup(
            rev, revlink_url(rev, repo)),
        "changecomment": lambda text, project="": decorations.comment_markup(
            text, web.changecommentlink, project),
        "projectlink": lambda name: decorations.name_link(name, web.projects),
        "repolink": lambda name: decorations.name_link(name, web.repositories),
        "email": decorations.email_markup,
        "user": decorations.user_markup,
        "full_time": timefmt.full_time,
        "line_time": timefmt.line_time,
        "pending_time": timefmt.pending_time,
        "ctime": timefmt.ctime,
        "slave_time": timefmt.slave_time,
        "clock": timefmt.clock,
        "duration": timefmt.duration,
        "age": timefmt.age,
        "result_class": result_class,
        "result_name": result_name,
        "eta": eta_text,
    })
    app.jinja_env.globals.update(revlink_url=revlink_url)

    @app.errorhandler(404)
    def not_found(exc: Any) -> Response:
        message = getattr(exc, "description", None) or "No such page."
        return render_page("error.html", "Not Found", status=404, message=message)


# The header's links: (label, path, endpoint). A view appears once its blueprint is mounted.
NAV = [
    ("Waterfall", "waterfall", "waterfall.waterfall"),
    ("Grid", "grid", "grid.grid"),
    ("T-Grid", "tgrid", "grid.tgrid"),
    ("Console", "console", "console.console"),
    ("Builders", "builders", "builders.builders"),
    ("Recent Builds", "one_line_per_build", "builders.one_line_per_build"),
    ("Buildslaves", "buildslaves", "buildslaves.buildslaves"),
    ("Changesources", "changes", "changes.change_sources"),
    ("JSON API", "json/help", "json_api.json_resource"),
    ("About", "about", "root.about"),
]


def nav_links() -> list[tuple[str, str]]:
    views = current_app.view_functions
    return [(label, path) for label, path, endpoint in NAV if endpoint in views]


def page_context(title: str) -> dict[str, Any]:
    """What the layout needs on every page."""
    s = site()
    now = time.time()
    feeds = s.config.web.provide_feeds
    refresh = request.args.get("reload", "")
    return {
        "page_title": title,
        "project_title": s.config.title,
        "project_url": project_url(s.config.titleURL),
        "version": __version__,
        "built_at": timefmt.full_time(now),
        "tz": timefmt.tz_name(now),
        "to_root": to_root(),
        "nav": nav_links(),
        # advertised when enabled and mounted (endpoints ``feeds.rss`` / ``feeds.atom``)
        "feeds": [f for f in ("rss", "atom")
                  if f in feeds and f"feeds.{f}" in current_app.view_functions],
        "alert_msg": request.args.get("alert_msg", ""),
        "refresh": max(int(refresh), 15) if is_int_text(refresh) and int(refresh) > 0 else None,
    }


def project_url(title_url: Any) -> str | None:
    """``c['titleURL']`` for the header's link, through the same scheme filter as revision
    links: a ``javascript:`` (or any non-web) URL would run on every page it is clicked on,
    so it is not linked (the title is shown as plain text)."""
    if not isinstance(title_url, str) or not title_url.strip():
        return None
    return decorations.safe_href(title_url)


def render_page(template: str, title: str, status: int = 200,
                headers: dict[str, str] | None = None, **context: Any) -> Response:
    """Render ``template`` inside the layout and return the response."""
    ctx = page_context(title)
    ctx.update(context)
    resp = Response(render_template(template, **ctx), status=status,
                    content_type="text/html; charset=utf-8")
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def bare_text(text: str, status: int = 200) -> Response:
    """A plain-text answer (0.8 served a few bare messages this way)."""
    return Response(text, status=status, content_type="text/plain; charset=utf-8")


__all__ = ["bare_text", "init_templates", "page_context", "render_page",
           "result_class", "to_root"]
