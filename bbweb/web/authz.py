"""Per-request authorization: who the user is, what they may do, and the guards.

The site's :class:`~bbweb.mastercfg.authz.Authz` (``WebStatus(authz=…)``) says, per action,
nobody / anybody / logged-in users / a function's choice. This module answers for the
current request:

* :func:`current_username` — the logged-in user (the signed session cookie, a script's
  ``username``/``passwd`` fields or HTTP Basic on a read, or in ``useHttpHeader`` mode the
  front end's ``REMOTE_USER`` / Basic ``Authorization``);
* :func:`action_allowed` — the decision, calling a configured function with the objects
  Buildbot 0.8 lists;
* :func:`advertise_action` — whether to show a form at all;
* :func:`action_guard` — what every action view calls first: POST only, a valid CSRF
  token, a logged-in user when the action needs one;
* :func:`deny` — the "Authorization Failed" answer.

The session cookie, logging in and out and the CSRF tokens are in :mod:`bbweb.web.sessions`,
whose public names are re-exported here so that views import everything about users and
permissions from this one module; :func:`init_app` installs it and the template globals.
The site-wide ``view`` check built on these decisions is :mod:`bbweb.web.view_guard`.
"""

from __future__ import annotations

import copy
import logging
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Flask, Response, flash, g, redirect, request
from flask_login import current_user as _login_user

from bbweb.auth.secret import load_or_create_secret
from bbweb.mastercfg.authz import Authz
from bbweb.plugins.site import site
from bbweb.web import sessions
from bbweb.web.rendering import to_root
from bbweb.web.sessions import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    SiteUser,
    csrf_field,
    csrf_token,
    csrf_valid,
    log_in,
    log_out,
    site_authz,
)

log = logging.getLogger("bbweb.auth")

MAX_CREDENTIAL = 1024  # longer user names or passwords are refused without trying them


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
    configured, because a front end that protects only ``/login`` (Buildbot's documented recipe)
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
    if isinstance(value, str):  # AUTH, the only text an action's value can be
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
    return to_root()


def _redirect(location: str, code: int = 303) -> Response:
    resp = redirect(location, code=code, Response=Response)
    assert isinstance(resp, Response)  # for the type checker: redirect() is typed loosely
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


def _current_relative() -> str:
    """This request's URL relative to the site root (for ``next``)."""
    path = request.path.lstrip("/")
    query = request.query_string.decode("latin-1")
    return path + (f"?{query}" if query else "")


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


# ---------------------------------------------------------------- setup

def init_app(app: Flask) -> None:
    """The site's Authz, the session and flask-login and the template globals for
    ``app``."""
    with app.app_context():
        s = site()
    sessions.init_app(app, load_or_create_secret(s.basedir))
    authz = s.config.web.authz
    if authz.auth is None and s.auth is not None:  # plugins.toml [auth]
        authz = copy.copy(authz)
        authz.auth = s.auth
    app.extensions["bbweb_authz"] = authz
    if authz.auth is not None:
        authz.auth.master = s  # 0.8: "each auth object gets a master attribute"
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


__all__ = [
    # identity, decisions and guards (this module)
    "MAX_CREDENTIAL", "action_allowed", "action_guard", "advertise_action", "current_page",
    "current_user_info", "current_username", "deny", "init_app", "refuse_unless_allowed",
    "safe_next",
    # re-exported from bbweb.web.sessions
    "CSRF_FIELD", "CSRF_HEADER", "SESSION_COOKIE", "SESSION_LIFETIME", "SiteUser",
    "csrf_field", "csrf_token", "csrf_valid", "log_in", "log_out", "site_authz",
]
