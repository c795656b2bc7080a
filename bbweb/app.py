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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from bbweb.db.connection import Database
from bbweb.db.migrate import is_current
from bbweb.engine.builders import sync_builders
from bbweb.mastercfg.master import MasterConfig, load_master_config
from bbweb.plugins.registry import (
    PluginSettings,
    discover,
    enabled_at,
    load_plugin_settings,
    not_installed,
)

log = logging.getLogger("bbweb.app")


@dataclass
class Site:
    """Everything a request handler needs: configuration, database, enabled plugins."""

    basedir: str
    config: MasterConfig
    db: Database
    plugin_settings: PluginSettings
    change_hooks: dict[str, Any] = field(default_factory=dict)  # dialect -> plugin instance
    pages: dict[str, Any] = field(default_factory=dict)  # name -> Blueprint (bbweb.pages)
    auth: Any = None  # the authentication back end plugins.toml's [auth] enables, if any
    plugin_failures: dict[str, str] = field(default_factory=dict)


def site() -> Site:
    """The current application's :class:`Site`."""
    return current_app.extensions["bbweb"]


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


def _enabled(webstatus_dialects: dict[str, Any], toml_section: dict[str, Any]
             ) -> dict[str, Any]:
    """master.cfg's ``change_hook_dialects`` plus plugins.toml's [change_hooks]; a plugin
    set to ``false`` in plugins.toml is disabled even if master.cfg names it."""
    enabled = {k: v for k, v in webstatus_dialects.items() if v is not False}
    for name, value in toml_section.items():
        if value is False:
            enabled.pop(name, None)
        else:
            enabled[name] = value
    return enabled


def load_change_hooks(cfg: MasterConfig, settings: PluginSettings
                      ) -> tuple[dict[str, Any], dict[str, str]]:
    """Instantiate the enabled change-hook dialects: (dialect -> plugin, failures)."""
    wanted = _enabled(cfg.web.change_hook_dialects, settings.section("change_hooks"))
    if not wanted:
        return {}, {}
    found = discover("change_hooks", wanted)  # only these: others are never imported
    hooks: dict[str, Any] = {}
    failures = {f"change_hooks.{k}": v for k, v in found.failed.items()}
    from bbweb.web.change_hook import split_options

    for name, options in wanted.items():
        cls = found.plugins.get(name)
        if cls is None:
            if name not in found.failed:
                failures[f"change_hooks.{name}"] = not_installed("change_hooks", name)
            continue
        # the framework's own options (max_body_size, allow_properties) are not the dialect's
        _framework, own = split_options(options)
        try:
            hooks[name] = cls(own if isinstance(own, dict) else {}, cfg)
        except Exception as exc:
            failures[f"change_hooks.{name}"] = f"{type(exc).__name__}: {exc}"
    return hooks, failures


def load_auth(cfg: MasterConfig, settings: PluginSettings, basedir: str
              ) -> tuple[Any, dict[str, str]]:
    """The authentication back end plugins.toml's [auth] enables (``name = true`` or a
    table of keyword arguments for the class; a relative ``file``/``*_file``/``path``
    option is relative to the basedir): (instance or None, failures). master.cfg's
    ``Authz(auth=…)`` wins; naming both, or two plugins, is reported."""
    wanted = {k: v for k, v in settings.section("auth").items() if v is not False}
    if not wanted:
        return None, {}
    if len(wanted) > 1:
        return None, {f"auth.{name}": "only one authentication back end can be enabled "
                                      f"(plugins.toml [auth] enables {', '.join(wanted)})"
                      for name in wanted}
    (name, options), = wanted.items()
    key = f"auth.{name}"
    authz = getattr(cfg.web, "authz", None)
    if authz is not None and authz.auth is not None:
        return None, {key: "master.cfg's Authz(auth=...) already sets the authentication "
                           "back end; remove one of the two"}
    found = discover("auth", [name])
    cls = found.plugins.get(name)
    if cls is None:
        return None, {key: found.failed.get(name) or not_installed("auth", name)}
    kwargs = dict(options) if isinstance(options, dict) else {}
    for opt, value in kwargs.items():
        if (opt in ("file", "path") or opt.endswith("_file")) and isinstance(value, str) \
                and not os.path.isabs(os.path.expanduser(value)):
            kwargs[opt] = os.path.join(basedir, value)
    try:
        return cls(**kwargs), {}
    except Exception as exc:  # ConfigErrors included: say it, leave logins off
        return None, {key: f"{type(exc).__name__}: {exc}"}


# First path segments bbweb serves or will serve (Buildbot 0.8's site map): a pages plugin
# may not take one of them.
RESERVED_PAGE_NAMES = frozenset({
    "about", "api", "atom", "authfail", "authzfail", "builders", "buildslaves",
    "buildstatus", "cancel_shutdown", "change_hook", "changes", "console", "default.css",
    "favicon.ico", "grid", "health", "json", "login", "logout", "one_box_per_builder",
    "one_line_per_build", "png", "robots.txt", "rss", "shutdown", "tgrid", "users",
    "waterfall",
})


def load_pages(cfg: MasterConfig, settings: PluginSettings
               ) -> tuple[dict[str, Any], dict[str, str]]:
    """Build the blueprints of the pages plugins plugins.toml enables: (name -> Blueprint,
    failures). Each plugin is ``make_blueprint(options, config) -> flask.Blueprint``;
    see docs/plugins.md."""
    from flask import Blueprint

    wanted = {k: v for k, v in settings.section("pages").items() if v is not False}
    if not wanted:
        return {}, {}
    found = discover("pages", wanted)
    pages: dict[str, Any] = {}
    failures = {f"pages.{k}": v for k, v in found.failed.items()}
    for name, options in wanted.items():
        key = f"pages.{name}"
        factory = found.plugins.get(name)
        if factory is None:
            if name not in found.failed:
                failures[key] = not_installed("pages", name)
            continue
        try:
            bp = factory(dict(options) if isinstance(options, dict) else {}, cfg)
        except Exception as exc:
            failures[key] = f"{type(exc).__name__}: {exc}"
            continue
        if not isinstance(bp, Blueprint):
            failures[key] = (f"make_blueprint returned {type(bp).__name__}, not a "
                             "flask.Blueprint")
            continue
        prefix = page_prefix(name, bp)
        first = prefix.strip("/").split("/", 1)[0]
        if not first or first in RESERVED_PAGE_NAMES:
            failures[key] = f"its URL prefix {prefix!r} belongs to bbweb's own pages"
            continue
        pages[name] = bp
    return pages, failures


def page_prefix(name: str, bp: Any) -> str:
    """Where a pages plugin is mounted: its blueprint's own url_prefix, else /<name>."""
    return "/" + (bp.url_prefix or name).strip("/")


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

    from bbweb.web import register_blueprints
    from bbweb.web.authz import init_app as init_auth

    init_auth(app)  # sessions, logins, the site-wide ``view`` check
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
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    for name, value in FRAME_POLICY.items():
        resp.headers.setdefault(name, value)
    return resp


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
