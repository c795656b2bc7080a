"""The Flask application factory.

``create_app()`` does all the work a process needs before serving: load master.cfg and
plugins.toml, open the status database, make sure the builders table matches the
configuration, and mount one blueprint per URL family. Nothing happens at import time, and
nothing is kept between requests except this read-only setup, so any number of gunicorn
processes can serve any request.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from bbweb.db.connection import Database
from bbweb.db.migrate import is_current
from bbweb.engine.builders import sync_builders
from bbweb.mastercfg.master import MasterConfig, load_master_config
from bbweb.plugins.loading import load_auth, load_change_hooks, load_pages
from bbweb.plugins.registry import enabled_at, load_plugin_settings
from bbweb.plugins.site import Site, site
from bbweb.web.authz import init_app as init_auth
from bbweb.web.blueprints import register_blueprints
from bbweb.web.view_guard import init_app as init_view_guard

log = logging.getLogger("bbweb.app")

# ``site`` lives in bbweb.plugins.site; page plugins written when it lived here import it
# from this module, which stays a documented place to find it.
__all__ = ["Site", "create_app", "default_basedir",
           "freeze_startup_objects", "security_headers", "serving_app", "site"]


def default_basedir(cwd: str | os.PathLike[str] | None = None) -> str:
    """The master a web process serves when it is not told: ``$BBWEB_BASEDIR``; else the
    working directory when it is a master's basedir (it has master.cfg, as under
    ``gunicorn --chdir BASEDIR``); else ``./master`` (beside a checkout's ``wsgi.py``,
    where ``scripts/run.sh`` creates it). ``cwd`` stands for the working directory (the
    repository's gunicorn.conf.py asks before gunicorn has applied ``--chdir``)."""
    here = Path(cwd) if cwd is not None else Path()
    configured = os.environ.get("BBWEB_BASEDIR")
    if configured:
        return str(here / configured)
    if (here / "master.cfg").is_file():
        return str(here)
    return str(here / "master")


def serving_app(basedir: str | os.PathLike[str] | None = None) -> Flask:
    """:func:`create_app` for a long-running server process (gunicorn, ``wsgi.py``).

    After start-up every object the app holds (templates, config, SQLAlchemy metadata:
    ~100k objects) is moved out of the garbage collector's reach with ``gc.freeze()``.
    Otherwise each full collection walks them all again — ~50 ms every few requests, which
    is what a busy page's 95th percentile time was made of. Tests, which create many
    short-lived apps, use :func:`create_app` and are not affected.
    """
    app = create_app(basedir)
    freeze_startup_objects()
    return app


def freeze_startup_objects() -> None:
    """Collect, then exclude everything alive now from future collections."""
    import gc

    gc.collect()
    gc.freeze()


def create_app(basedir: str | os.PathLike[str] | None = None,
               config: MasterConfig | None = None,
               testing: bool = False) -> Flask:
    """Build the WSGI application for one master basedir."""
    basedir = str(Path(basedir or default_basedir()).resolve())
    cfg = config or load_master_config(basedir)
    settings = load_plugin_settings(basedir)
    db = Database(cfg.db_url)
    if not is_current(db):
        db.dispose()
        raise RuntimeError(f"the status database for {basedir} is missing or out of date: "
                           f"run 'bbweb upgrade-master {basedir}'")
    _sync_builders_once(db, cfg)

    app = Flask("bbweb", instance_path=basedir)
    app.config["TESTING"] = testing
    # jsonify (the worker API) sorts keys, as /json does: the same document is the same bytes.
    # (Flask 2.3 dropped the JSON_SORT_KEYS setting; this is its replacement.)
    app.json.sort_keys = True  # type: ignore[attr-defined]
    app.after_request(security_headers)
    hooks, failures = load_change_hooks(cfg, settings)
    pages, page_failures = load_pages(cfg, settings)
    failures.update(page_failures)
    auth, auth_failures = load_auth(cfg, settings, basedir)
    failures.update(auth_failures)
    for name, message in failures.items():
        section, _, plugin = name.partition(".")
        where = enabled_at(section, plugin, settings, cfg)
        log.error("%splugin %s is not available: %s", f"{where}: " if where else "", name,
                  message)
    app.extensions["bbweb"] = Site(basedir=basedir, config=cfg, db=db,
                                   plugin_settings=settings, change_hooks=hooks,
                                   pages=pages, auth=auth, plugin_failures=failures)

    init_auth(app)  # sessions, logins
    init_view_guard(app)  # the site-wide ``view`` check
    register_blueprints(app)
    return app


# Pages may be framed by this site only: a page of another site cannot overlay a force or
# stop button (clickjacking). CSP frame-ancestors for current browsers, X-Frame-Options
# for the older ones.
FRAME_POLICY = {"Content-Security-Policy": "frame-ancestors 'self'",
                "X-Frame-Options": "SAMEORIGIN"}


def security_headers(resp: Any) -> Any:
    """Headers every answer carries (docs/security.md): ``X-Content-Type-Options: nosniff``
    (a browser never guesses HTML or script from user text in a log, a feed, a badge or
    a JSON document), and the frame policy (kept where an answer sets its own)."""
    headers = resp.headers
    present = {name.lower() for name, _ in headers.items()}
    # (werkzeug's ``setdefault`` raises and catches an exception for each header it sets)
    for name, value in _SECURITY_HEADERS:
        if name.lower() not in present:
            headers.add(name, value)
    return resp


_SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"), *FRAME_POLICY.items())


def _sync_builders_once(db: Database, cfg: MasterConfig) -> None:
    """Several processes start at once; the loser of an insert race simply re-reads."""
    for attempt in range(3):
        try:
            with db.write() as conn:
                sync_builders(conn, cfg)
            return
        except sa.exc.IntegrityError:
            if attempt == 2:
                raise
