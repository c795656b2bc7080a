"""Blueprints, one per URL family, mounted by :func:`register_blueprints`."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Mount the URL families this site's configuration enables."""
    from bbweb.app import site
    from bbweb.web import (
        builders,
        builds,
        buildslaves,
        change_hook,
        changes,
        health,
        json_api,
        logs,
        root,
        static_files,
        worker_api,
    )
    from bbweb.web.rendering import init_templates

    with app.app_context():
        s = site()
    init_templates(app)
    app.register_blueprint(root.bp)
    for pages in (builders, builds, logs, changes, buildslaves):
        app.register_blueprint(pages.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(worker_api.bp, url_prefix="/api/worker")
    app.register_blueprint(change_hook.bp, url_prefix="/change_hook")
    if "json" in s.config.web.provide_feeds:
        app.register_blueprint(json_api.bp, url_prefix="/json")
    # last: files from public_html answer only what no page claims
    app.register_blueprint(static_files.bp)
