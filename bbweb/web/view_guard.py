"""The site-wide ``view`` check: a private site shows nothing to those it does not allow.

When the site's ``Authz`` restricts ``view``, every request (before its view runs) is
checked here, except the endpoints that must work for anyone or have their own
authentication (the exempt lists below). An anonymous visitor of a private site goes to
the login page (HTML), or gets 401 (JSON, feeds, badges, raw logs: what scripts fetch); a
logged-in user who is not allowed gets "Authorization Failed" (or 403 for those). A badge
URL carrying a valid per-badge token is public (docs/security.md). Every answer of a
private site is marked ``Cache-Control: private``.

The decision itself is :func:`bbweb.web.authz.action_allowed`'s; the application calls
:func:`init_app` after :func:`bbweb.web.authz.init_app`.
"""

from __future__ import annotations

from flask import Flask, Response, g, request

from bbweb.auth.tokens import badge_token_valid
from bbweb.web import authz as az

# Endpoints (blueprint names or full endpoint names) that ``view`` never protects: they
# have their own authentication (worker API, change hooks), must work for anyone (health
# checks, the login/logout/failure pages and the stylesheet and icon they use).
VIEW_EXEMPT_BLUEPRINTS = frozenset({"worker_api", "change_hook", "health", "auth_pages"})
# files of public_html the login page needs (anything else there is protected)
VIEW_EXEMPT_FILES = frozenset({"default.css", "favicon.ico", "robots.txt"})
# Answered with 401 rather than a redirect to the login page when ``view`` is denied.
MACHINE_BLUEPRINTS = frozenset({"json_api", "feeds", "badges", "live_events"})


def _exempt_file() -> bool:
    """Whether this request is for one of the public_html files the login page needs."""
    return (request.endpoint == "static_files.public_file"
            and (request.view_args or {}).get("filename") in VIEW_EXEMPT_FILES)


def _view_check() -> Response | None:
    """``view`` for every page except the exempt ones: anonymous visitors of a private
    site go to the login page (HTML) or get 401 (JSON, feeds, badges, raw logs)."""
    endpoint = request.endpoint or ""
    blueprint = request.blueprint or ""
    if blueprint in VIEW_EXEMPT_BLUEPRINTS or endpoint == "static" or _exempt_file():
        return None
    authz = az.site_authz()
    value = authz.value("view")
    if value is True:
        return None
    if _badge_token_ok(blueprint):
        g.bbweb_public_by_token = True
        return None
    if az.action_allowed("view"):
        return None
    path = request.path.rstrip("/")
    machine = ((blueprint in MACHINE_BLUEPRINTS and not path.endswith("/help"))
               or path.endswith(("/text", "/chunks"))
               or not request.accept_mimetypes.accept_html)
    if az.current_username() is None and authz.can_login() and value is not False:
        if machine:
            headers = {} if authz.useHttpHeader else {
                "WWW-Authenticate": 'Basic realm="bbweb", charset="UTF-8"'}
            return Response("Log in to see this site.\n", status=401, headers=headers,
                            content_type="text/plain; charset=utf-8")
        if authz.useHttpHeader:
            if authz.httpLoginUrl:
                return az._redirect(authz.httpLoginUrl)
            return Response("Log in to see this site.\n", status=401,
                            content_type="text/plain; charset=utf-8")
        return az._redirect(az._relative_root() + "login?next="
                            + az._quote(az.safe_next(az._current_relative()) or ""))
    if machine:
        return Response("You are not allowed to see this site.\n", status=403,
                        content_type="text/plain; charset=utf-8")
    return az._redirect(az._relative_root() + "authzfail")


def _private_cache(resp: Response) -> Response:
    """On a site whose ``view`` is restricted, what a page shows is for its viewer only:
    ``Cache-Control: private``, so that no shared cache (a caching front end, a CDN)
    keeps a file, badge or log that a logged-in user or a script with HTTP Basic
    credentials fetched and hands it to the next anonymous visitor (``public`` would
    even allow that for requests carrying ``Authorization``). The exempt files and a
    badge opened by its token stay as they were."""
    if az.site_authz().value("view") is True or g.get("bbweb_public_by_token"):
        return resp
    if _exempt_file():
        return resp
    cc = resp.cache_control
    cc.public = False
    cc.s_maxage = None
    cc.private = True
    return resp


def _badge_token_ok(blueprint: str) -> bool:
    """A badge URL carrying a valid per-badge token is public (docs/security.md)."""
    if blueprint != "badges":
        return False
    token = request.args.get("token")
    if not token:
        return False
    return badge_token_valid(request.args, token)


def init_app(app: Flask) -> None:
    """Check ``view`` before every request of ``app``, and mark private answers so."""
    app.before_request(_view_check)
    app.after_request(_private_cache)
