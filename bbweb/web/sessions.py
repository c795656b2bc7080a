"""The login session: its signed cookie, flask-login's user, and the CSRF token it holds.

A user who logs in through the site's own form gets a Flask signed-cookie session (the
cookie ``bbweb_session``: ``HttpOnly``, ``SameSite=Lax``, ``Secure`` over https) that
lasts 24 hours from the login, as in 0.8, and is not renewed by use. It carries:

* the user's name, full name and e-mail (what :class:`SiteUser` is built from on each
  request; the back end is not asked again);
* ``login_at``, which lets the server refuse a session made before the user's last
  logout (:mod:`bbweb.auth.sessions` keeps those records; a copied cookie dies too);
* ``csrf``, the token every form posts back (:func:`csrf_field`, :func:`csrf_valid`).

Who the request's user is, and what they may do, is :mod:`bbweb.web.authz`'s job; it
calls :func:`init_app` and re-exports the public names here. The site's ``Authz``
(:func:`site_authz`) is kept here, where logging in first needs it.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from datetime import timedelta
from typing import Any

from flask import Flask, Request, current_app, g, has_request_context, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import LoginManager, UserMixin, login_user, logout_user
from flask_login import current_user as _login_user
from markupsafe import Markup, escape

from bbweb.auth.sessions import end_sessions, sessions_ended_at
from bbweb.mastercfg.authz import Authz
from bbweb.plugins.site import site

log = logging.getLogger("bbweb.auth")

SESSION_COOKIE = "bbweb_session"
SESSION_LIFETIME = timedelta(hours=24)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def site_authz() -> Authz:
    """The site's Authz (read-only ``Authz()`` when none is configured), with the
    authentication back end plugins.toml's [auth] enables (:func:`bbweb.web.authz.init_app`
    stores it)."""
    authz: Authz = current_app.extensions["bbweb_authz"]
    return authz


class SiteUser(UserMixin):
    """A logged-in user as flask-login sees it (everything comes from the session)."""

    def __init__(self, name: str, full_name: str = "", email: str = "") -> None:
        self.id = name
        self.name = name
        self.full_name = full_name or name
        self.email = email


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


# ---------------------------------------------------------------- logging in and out

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
    g.pop("bbweb_user", None)  # current_username()'s answer for this request


def log_out() -> None:
    """End the session: the cookie is cleared, and the server refuses from now on every
    session of this user made by an earlier login (a copy of the cookie kept elsewhere
    is worth nothing; :mod:`bbweb.auth.sessions`)."""
    if _login_user.is_authenticated:
        end_sessions(site().db, _login_user.name)
    logout_user()
    session.clear()
    g.pop("bbweb_user", None)  # current_username()'s answer for this request


# ---------------------------------------------------------------- the cookie and the user

class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session with ``Secure`` set whenever the request came in
    over https (directly, or from a front end gunicorn trusts to say so)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]
                    or (has_request_context() and request.is_secure))

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """A request without the cookie (scripts, badges, every /json client) gets an
        empty session at once: Flask builds the signing serializer first, which cost a
        tenth of a millisecond per request for nothing to verify."""
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        """Nothing to set or delete for an empty session nobody changed (every /json
        client): answered before Flask works out the cookie's attributes."""
        if not session and not session.modified:
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)


def _load_user(name: str) -> SiteUser | None:
    """flask-login's user loader: the session's user, unless the session has expired,
    the site no longer logs users in itself, or the user has logged out since."""
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


def init_app(app: Flask, secret_key: bytes) -> None:
    """The signed session cookie (its flags, the site's shared secret) and flask-login
    for ``app``."""
    app.secret_key = secret_key
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        SESSION_REFRESH_EACH_REQUEST=False,
    )
    app.session_interface = _SessionInterface()
    manager = LoginManager()
    manager.user_loader(_load_user)
    manager.session_protection = None  # the session is already signed; IPs change
    manager.init_app(app)
