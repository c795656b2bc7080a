"""Loading the enabled plugins of each kind for a web process (and for ``bbweb checkconfig``
and ``bbweb start``, which report what would fail): each load returns the instances and,
by ``kind.name``, why the others are left out.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint

from bbweb.mastercfg.master import MasterConfig
from bbweb.plugins.interfaces import auth_problem, dialect_problem
from bbweb.plugins.registry import PluginSettings, discover, not_installed

# Options every dialect may be given, read by this framework (not by the dialect).
FRAMEWORK_OPTIONS = ("max_body_size", "allow_properties")


def split_options(options: Any) -> tuple[dict[str, Any], Any]:
    """(framework options, the dialect's own options) of one ``change_hook_dialects``
    value, for a loader that hands dialects only their own options."""
    if not isinstance(options, dict):
        return {}, options
    return ({k: v for k, v in options.items() if k in FRAMEWORK_OPTIONS},
            {k: v for k, v in options.items() if k not in FRAMEWORK_OPTIONS})


def enabled_dialects(webstatus_dialects: dict[str, Any], toml_section: dict[str, Any]
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
    wanted = enabled_dialects(cfg.web.change_hook_dialects, settings.section("change_hooks"))
    if not wanted:
        return {}, {}
    found = discover("change_hooks", wanted)  # only these: others are never imported
    hooks: dict[str, Any] = {}
    failures = {f"change_hooks.{k}": v for k, v in found.failed.items()}
    for name, options in wanted.items():
        cls = found.plugins.get(name)
        if cls is None:
            if name not in found.failed:
                failures[f"change_hooks.{name}"] = not_installed("change_hooks", name)
            continue
        # the framework's own options (max_body_size, allow_properties) are not the dialect's
        _framework, own = split_options(options)
        try:
            hook = cls(own if isinstance(own, dict) else {}, cfg)
        except Exception as exc:
            failures[f"change_hooks.{name}"] = f"{type(exc).__name__}: {exc}"
            continue
        problem = dialect_problem(hook)
        if problem:  # left out: its URL is a 404 like a disabled dialect's, never a 500
            failures[f"change_hooks.{name}"] = problem
            continue
        hooks[name] = hook
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
        backend = cls(**kwargs)
    except Exception as exc:  # ConfigErrors included: say it, leave logins off
        return None, {key: f"{type(exc).__name__}: {exc}"}
    problem = auth_problem(backend)
    if problem:
        return None, {key: problem}
    return backend, {}


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
