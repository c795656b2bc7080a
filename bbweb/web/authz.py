"""Per-request authorization: who the user is, what they may do, and the guards.

The site's :class:`~bbweb.auth.authz.Authz` (``WebStatus(authz=…)``) says, per action,
nobody / anybody / logged-in users / a function's choice. This module answers for the
current request:

* :func:`current_username` — the logged-in user (the signed session cookie, or in
  ``useHttpHeader`` mode the front end's ``REMOTE_USER`` / Basic ``Authorization``);
* :func:`action_allowed` — the decision, calling a configured function with the objects
  the seed lists;
* :func:`advertise_action` — whether to show a form at all;
* :func:`action_guard` — what every action view calls first: POST only, a valid CSRF
  token, a logged-in user when the action needs one;
* :func:`deny` — the "Authorization Failed" answer.

:func:`init_app` installs the session (cookie flags, the shared secret), flask-login,
the site-wide ``view`` check and the template globals.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, flash, g, redirect, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, UserMixin, login_user, logout_user
from flask_login import current_user as _login_user
from markupsafe import Markup, escape

from bbweb.auth.authz import AUTH, Authz

log = logging.getLogger("bbweb.auth")

SESSION_COOKIE = "bbweb_session"
SESSION_LIFETIME = timedelta(hours=24)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
MAX_CREDENTIAL = 1024  # longer user names or passwords are refused without trying them

# Endpoints (blueprint names or full endpoint names) that ``view`` never protects: they
# have their own authentication (worker API, change hooks), must work for anyone (health
# checks, the login/logout/failure pages and the stylesheet and icon they use).
VIEW_EXEMPT_BLUEPRINTS = frozenset({"worker_api", "change_hook", "health", "auth_pages"})
# files of public_html the login page needs (anything else there is protected)
VIEW_EXEMPT_FILES = frozenset({"default.css", "favicon.ico", "robots.txt"})
# Answered with 401 rather than a redirect to the login page when ``view`` is denied.
MACHINE_BLUEPRINTS = frozenset({"json_api", "feeds", "badges"})


class SiteUser(UserMixin):
    """A logged-in user as flask-login sees it (everything comes from the session)."""

    def __init__(self, name: str, full_name: str = "", email: str = "") -> None:
        self.id = name
        self.name = name
        self.full_name = full_name or name
        self.email = email


def site_authz() -> Authz:
    """The site's Authz (read-only ``Authz()`` when none is configured)."""
    return current_app.extensions["bbweb_authz"]


# ---------------------------------------------------------------- identity

def _check_credentials(authz: Authz, user: str, password: str, how: str) -> bool:
    """The auth back end's answer; an exception is a failure (0.8 counted it a success).

    Every refusal is logged with the user name and address, whichever way the
    credentials came (``how``: the login form, HTTP Basic, a script's fields), so that
    fail2ban or similar can see password guessing on all of them.
    """
    if authz.auth is None or not user:
        return False
    if len(user) > MAX_CREDENTIAL or len(password) > MAX_CREDENTIAL:
        # refused untried: a hash's cost grows with the password's length (SHA-crypt
        # takes seconds for the 4 KB a Basic header or a form field can carry)
        log.warning("failed login for %r from %s (%s: name or password longer than %d)",
                    user[:64], request.remote_addr, how, MAX_CREDENTIAL)
        return False
    try:
        ok = bool(authz.auth.authenticate(user, password))
    except Exception:
        log.exception("authentication of %r failed with an error; refusing", user[:64])
        ok = False
    if not ok:
        log.warning("failed login for %r from %s (%s)", user[:64], request.remote_addr, how)
    return ok


def _header_user(authz: Authz) -> str | None:
    """In header mode: the user the front end authenticated.

    ``REMOTE_USER`` (set by the WSGI server, never by the client) wins; otherwise the
    Basic ``Authorization`` header's user — checked against ``auth=`` when one is
    configured, because a front end that protects only ``/login`` (the seed's recipe)
    passes a forged header on every other path unchecked.
    """
    remote = request.environ.get("REMOTE_USER")
    if remote:
        return str(remote)
    creds = request.authorization
    if creds is None or creds.type != "basic" or not creds.username:
        return None
    if authz.auth is not None and not _check_credentials(
            authz, creds.username, creds.password or "", "Authorization header"):
        return None
    return creds.username


def _script_credentials(authz: Authz) -> bool:
    """Whether this is an action POST carrying its own ``username``/``passwd`` fields
    (0.8's support for scripts) on a site that logs users in itself. The login form's
    own fields are not: they count only through the login view (with its CSRF check)."""
    return (request.method == "POST" and "passwd" in request.form
            and request.blueprint != "auth_pages"
            and authz.auth is not None and not authz.useHttpHeader)


def _script_user(authz: Authz) -> str | None:
    """The user a script's ``username``/``passwd`` fields authenticate, if any."""
    if not _script_credentials(authz):
        return None
    user = request.form.get("username", "")
    if _check_credentials(authz, user, request.form.get("passwd", ""),
                          "username/passwd fields"):
        return user
    return None


def _basic_reader(authz: Authz) -> str | None:
    """HTTP Basic credentials on a GET or HEAD: how scripts read a private site (JSON,
    feeds, logs). Never used for actions, which a browser's remembered Basic
    credentials must not be able to trigger cross-site."""
    if request.method not in ("GET", "HEAD"):
        return None
    creds = request.authorization
    if creds is None or creds.type != "basic" or not creds.username:
        return None
    if _check_credentials(authz, creds.username, creds.password or "", "HTTP Basic"):
        return creds.username
    return None


def current_username() -> str | None:
    """The logged-in user's name (session, or front-end header in ``useHttpHeader``
    mode); None for an anonymous request."""
    if "bbweb_user" in g:
        return g.bbweb_user
    authz = site_authz()
    name: str | None
    if authz.useHttpHeader:
        name = _header_user(authz)
    else:
        name = _login_user.name if _login_user.is_authenticated else None
        if name is None and authz.auth is not None:
            name = _script_user(authz)
            g.bbweb_script_login = name is not None
        if name is None and authz.auth is not None:
            name = _basic_reader(authz)
    g.bbweb_user = name
    return name


def current_user_info() -> dict[str, str] | None:
    """``{'name', 'full_name', 'email'}`` of the logged-in user for the header bar."""
    name = current_username()
    if name is None:
        return None
    if not site_authz().useHttpHeader and _login_user.is_authenticated:
        return {"name": name, "full_name": _login_user.full_name,
                "email": _login_user.email}
    return {"name": name, "full_name": name, "email": ""}


# ---------------------------------------------------------------- decisions

def action_allowed(action: str, *objects: Any) -> bool:
    """Whether this request's user may do ``action``; a configured function gets
    ``(username, *objects)``. A function that raises denies (and is logged)."""
    authz = site_authz()
    value = authz.value(action)
    if value is True or value is False:
        return value
    user = current_username()
    if user is None:
        return False
    if value == AUTH:
        return True
    try:
        return bool(value(user, *objects))
    except Exception:
        log.exception("the Authz function for %s raised; denying %r", action, user[:64])
        return False


def advertise_action(action: str) -> bool:
    """True when a form for ``action`` should be shown: it is not False, and for
    ``'auth'``/function actions, somebody could log in on this site (the POST decides)."""
    authz = site_authz()
    value = authz.value(action)
    if value is True or value is False:
        return value
    return authz.can_login()


def _relative_root() -> str:
    from bbweb.web.rendering import to_root

    return to_root()


def _redirect(location: str, code: int = 303) -> Response:
    resp = redirect(location, code=code)
    resp.autocorrect_location_header = False
    return resp


def deny(action: str) -> Response:
    """The answer to a refused action: a redirect to the "Authorization Failed" page."""
    log.info("%s refused to %r from %s", action, current_username(), request.remote_addr)
    return _redirect(_relative_root() + "authzfail")


def action_guard(action: str) -> Response | None:
    """Call first in every action view: None when the view may go on, else the answer.

    Checks, in order: the method is POST (405); the action can be allowed at all (not
    False, and for ``'auth'``/function actions somebody can log in; else authzfail);
    a script's own ``username``/``passwd`` are right (else authfail); the CSRF token
    (403; not needed when the request carries its own credentials); a user is logged in
    when the action needs one (else the login page, coming back afterwards).
    """
    if request.method != "POST":
        return Response(f"{action}: use POST (the page's form)\n", status=405,
                        headers={"Allow": "POST"}, content_type="text/plain; charset=utf-8")
    authz = site_authz()
    value = authz.value(action)
    if value is False or (authz.needs_login(action) and not authz.can_login()):
        return deny(action)
    current_username()
    script = bool(g.get("bbweb_script_login"))
    if _script_credentials(authz) and not script:
        return _redirect(_relative_root() + "authfail")  # a script's wrong password
    if not script and not csrf_valid():
        return Response("The form has expired or did not come from this site (missing or "
                        "wrong CSRF token): reload the page and try again.\n", status=403,
                        content_type="text/plain; charset=utf-8")
    if authz.needs_login(action) and current_username() is None:
        flash("Log in to do this.", "error")
        return _redirect(_relative_root() + "login?next=" + _quote(_back_path()))
    return None


def refuse_unless_allowed(action: str) -> Response | None:
    """:func:`action_guard` plus the Authz decision, for actions that act on no single
    object (force all, stop all, cancel all...): None when the view may go on."""
    refused = action_guard(action)
    if refused is None and not action_allowed(action):
        refused = deny(action)
    return refused


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="/")


def _back_path() -> str:
    """The page the user came from, relative to the site root (for login's ``next``)."""
    ref = request.referrer or ""
    parts = urlsplit(ref)
    path = parts.path
    root = request.script_root or ""
    if path.startswith(root + "/"):
        path = path[len(root) + 1:]
    else:
        return ""
    return safe_next(path + (f"?{parts.query}" if parts.query else "")) or ""


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path relative to the site root (no scheme, host, leading
    slash or backslash, control characters), else None: login and logout only redirect
    to this site."""
    if not target:
        return None
    if any(ord(c) < 32 or c == "\\" for c in target) or target.startswith("/"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


# ---------------------------------------------------------------- CSRF

def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_valid() -> bool:
    """Whether the request's ``csrf_token`` field (or ``X-CSRF-Token`` header) matches
    this session's token."""
    expected = session.get("csrf")
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"),
                               given.encode("utf-8", "surrogateescape"))


def csrf_field() -> Markup:
    """The hidden form field carrying the CSRF token."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(
        CSRF_FIELD, escape(csrf_token()))


# ---------------------------------------------------------------- sessions

def log_in(name: str) -> None:
    """Start a session for ``name`` (a fresh one: nothing of the anonymous session, in
    particular its CSRF token, carries over)."""
    authz = site_authz()
    info: dict[str, Any] = {}
    try:
        info = authz.auth.getUserInfo(name) if authz.auth is not None else {}
    except Exception:
        log.exception("getUserInfo(%r) failed", name[:64])
    session.clear()
    session.permanent = True
    session["login_at"] = time.time()
    session["full_name"] = str(info.get("fullName") or name)
    email = str(info.get("email") or "")
    session["email"] = "" if email.endswith("@localhost") else email
    login_user(SiteUser(name, session["full_name"], session["email"]))
    csrf_token()
    g.pop("bbweb_user", None)


def log_out() -> None:
    """End the session: the cookie is cleared, and the server refuses from now on every
    session of this user made by an earlier login (a copy of the cookie kept elsewhere
    is worth nothing; :mod:`bbweb.auth.sessions`)."""
    from bbweb.app import site
    from bbweb.auth.sessions import end_sessions

    if _login_user.is_authenticated:
        end_sessions(site().db, _login_user.name)
    logout_user()
    session.clear()
    g.pop("bbweb_user", None)


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session with ``Secure`` set whenever the request came in
    over https (directly, or from a front end gunicorn trusts to say so)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        from flask import has_request_context

        return bool(app.config["SESSION_COOKIE_SECURE"]
                    or (has_request_context() and request.is_secure))


def _load_user(name: str) -> SiteUser | None:
    from bbweb.app import site
    from bbweb.auth.sessions import sessions_ended_at

    login_at = session.get("login_at", 0)
    if not isinstance(login_at, int | float) or time.time() - login_at > \
            SESSION_LIFETIME.total_seconds():
        return None  # 24 hours after login, like 0.8 (not renewed by use)
    authz = site_authz()
    if authz.auth is None or authz.useHttpHeader:
        return None  # the site no longer logs users in this way
    ended = sessions_ended_at(site().db, name)
    if ended is not None and login_at <= ended:
        return None  # the user logged out (in this browser or another) since
    return SiteUser(name, session.get("full_name", name), session.get("email", ""))


# ---------------------------------------------------------------- view protection

def _view_check() -> Response | None:
    """``view`` for every page except the exempt ones: anonymous visitors of a private
    site go to the login page (HTML) or get 401 (JSON, feeds, badges, raw logs)."""
    endpoint = request.endpoint or ""
    blueprint = request.blueprint or ""
    if blueprint in VIEW_EXEMPT_BLUEPRINTS or endpoint == "static":
        return None
    if (endpoint == "static_files.public_file"
            and (request.view_args or {}).get("filename") in VIEW_EXEMPT_FILES):
        return None
    authz = site_authz()
    value = authz.value("view")
    if value is True:
        return None
    if _badge_token_ok(blueprint):
        g.bbweb_public_by_token = True
        return None
    if action_allowed("view"):
        return None
    path = request.path.rstrip("/")
    machine = ((blueprint in MACHINE_BLUEPRINTS and not path.endswith("/help"))
               or path.endswith(("/text", "/chunks"))
               or not request.accept_mimetypes.accept_html)
    if current_username() is None and authz.can_login() and value is not False:
        if machine:
            headers = {} if authz.useHttpHeader else {
                "WWW-Authenticate": 'Basic realm="bbweb", charset="UTF-8"'}
            return Response("Log in to see this site.\n", status=401, headers=headers,
                            content_type="text/plain; charset=utf-8")
        if authz.useHttpHeader:
            if authz.httpLoginUrl:
                return _redirect(authz.httpLoginUrl)
            return Response("Log in to see this site.\n", status=401,
                            content_type="text/plain; charset=utf-8")
        return _redirect(_relative_root() + "login?next="
                         + _quote(safe_next(_current_relative()) or ""))
    if machine:
        return Response("You are not allowed to see this site.\n", status=403,
                        content_type="text/plain; charset=utf-8")
    return _redirect(_relative_root() + "authzfail")


def _private_cache(resp: Response) -> Response:
    """On a site whose ``view`` is restricted, what a page shows is for its viewer only:
    ``Cache-Control: private``, so that no shared cache (a caching front end, a CDN)
    keeps a file, badge or log that a logged-in user or a script with HTTP Basic
    credentials fetched and hands it to the next anonymous visitor (``public`` would
    even allow that for requests carrying ``Authorization``). The exempt files and a
    badge opened by its token stay as they were."""
    if site_authz().value("view") is True or g.get("bbweb_public_by_token"):
        return resp
    if (request.endpoint == "static_files.public_file"
            and (request.view_args or {}).get("filename") in VIEW_EXEMPT_FILES):
        return resp
    cc = resp.cache_control
    cc.public = False
    cc.s_maxage = None
    cc.private = True
    return resp


def _current_relative() -> str:
    """This request's URL relative to the site root (for ``next``)."""
    path = request.path.lstrip("/")
    query = request.query_string.decode("latin-1")
    return path + (f"?{query}" if query else "")


def _badge_token_ok(blueprint: str) -> bool:
    """A badge URL carrying a valid per-badge token is public (docs/security.md)."""
    if blueprint != "badges":
        return False
    token = request.args.get("token")
    if not token:
        return False
    from bbweb.auth.tokens import badge_token_valid

    return badge_token_valid(request.args, token)


# ---------------------------------------------------------------- setup

def init_app(app: Flask) -> None:
    """Sessions, flask-login, the ``view`` check and the template globals for ``app``."""
    from bbweb.app import site
    from bbweb.auth.secret import load_or_create_secret

    with app.app_context():
        s = site()
    app.secret_key = load_or_create_secret(s.basedir)
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        SESSION_REFRESH_EACH_REQUEST=False,
    )
    app.session_interface = _SessionInterface()
    authz = app.extensions["bbweb_authz"] = s.config.web.authz
    if authz.auth is not None:
        authz.auth.master = s  # 0.8: "each auth object gets a master attribute"
    manager = LoginManager()
    manager.user_loader(_load_user)
    manager.session_protection = None  # the session is already signed; IPs change
    manager.init_app(app)
    app.before_request(_view_check)
    app.after_request(_private_cache)
    app.jinja_env.globals.update(
        csrf_field=csrf_field,
        advertise_action=advertise_action,
        action_allowed=action_allowed,
        current_username=current_username,
        current_user_info=current_user_info,
        site_authz=site_authz,
        current_page=current_page,
    )


def current_page() -> str:
    """This page relative to the site root, for the login/logout forms' ``next`` (empty
    on the login pages themselves)."""
    here = safe_next(_current_relative()) or ""
    if here.split("?", 1)[0] in ("login", "logout", "authfail", "authzfail"):
        return ""
    return here


__all__ = ["action_allowed", "action_guard", "advertise_action", "csrf_field",
           "csrf_token", "csrf_valid", "current_username", "deny", "init_app", "log_in",
           "log_out", "safe_next"]
