"""Mounting the blueprints, one per URL family, that this site's configuration enables."""

from __future__ import annotations

import logging

from flask import Flask

from bbweb.plugins.loading import page_prefix
from bbweb.plugins.site import site
from bbweb.web import (
    actions,
    actions_force,
    auth_pages,
    badges,
    builders,
    builds,
    buildslaves,
    change_hook,
    changes,
    console,
    events,
    feeds,
    grid,
    health,
    json_api,
    notifications,
    root,
    static_files,
    waterfall,
    worker_api,
)
from bbweb.web.rendering import init_templates


def register_blueprints(app: Flask) -> None:
    """Mount the URL families this site's configuration enables."""
    with app.app_context():
        s = site()
    init_templates(app)
    app.register_blueprint(root.bp)
    for pages in (builders, builds, changes, buildslaves):
        app.register_blueprint(pages.bp)
    app.register_blueprint(waterfall.bp)  # /waterfall, /waterfall/help
    app.register_blueprint(grid.bp)
    app.register_blueprint(console.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(notifications.bp)  # /notifications, /json/notifications
    app.register_blueprint(worker_api.bp, url_prefix="/api/worker")
    app.register_blueprint(change_hook.bp, url_prefix="/change_hook")
    if "json" in s.config.web.provide_feeds:
        app.register_blueprint(json_api.bp, url_prefix="/json")
    app.register_blueprint(events.bp)  # /json/events, the live stream the pages use too
    wanted_feeds = [f for f in ("rss", "atom") if f in s.config.web.provide_feeds]
    if wanted_feeds:
        app.register_blueprint(feeds.make_blueprint(wanted_feeds))
    app.register_blueprint(badges.bp)
    app.register_blueprint(actions.bp)  # force, stop, cancel, ping, shutdown…
    app.register_blueprint(actions_force.bp)
    auth_pages.register(app)  # login…, /users
    _mount_pages(app)
    # last: files from public_html answer only what no page claims
    app.register_blueprint(static_files.bp)


def _mount_pages(app: Flask) -> None:
    """The ``bbweb.pages`` plugins (Buildbot's ``putChild``), each at its blueprint's
    url_prefix or ``/<name>``. One that cannot be mounted is logged and left out."""
    s = app.extensions["bbweb"]
    for name, bp in list(s.pages.items()):
        prefix = page_prefix(name, bp)
        problem = None
        if any(r.rule == prefix or r.rule.startswith(prefix + "/")
               for r in app.url_map.iter_rules()):
            problem = f"its URL prefix {prefix!r} is already served by another page"
        else:
            try:
                app.register_blueprint(bp, url_prefix=prefix)
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
        if problem:
            del s.pages[name]
            s.plugin_failures[f"pages.{name}"] = problem
            logging.getLogger("bbweb.app").error("plugin pages.%s is not available: %s",
                                                 name, problem)
