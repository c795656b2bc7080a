"""``/login``, ``/logout``, ``/authfail``, ``/authzfail``.

Logging in and out are POSTs with the session's CSRF token (a GET shows the form); both
redirect to ``next``, a page of this site given relative to its root, never elsewhere.
These pages are reachable even when ``view`` is denied, so a private site can be
logged into.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, Response, request

from bbweb.web import authz, users
from bbweb.web.rendering import render_page, to_root

bp = Blueprint("auth_pages", __name__)
log = logging.getLogger("bbweb.auth")

MAX_FIELD = authz.MAX_CREDENTIAL


def _back(target: str | None) -> Response:
    """A redirect to ``target`` (relative to the site root) or to the root."""
    return authz._redirect(to_root() + (authz.safe_next(target) or ""))


@bp.route("/login", methods=["GET", "HEAD", "POST"])
def login() -> Response:
    site_authz = authz.site_authz()
    next_page = authz.safe_next(request.values.get("next")) or ""
    if site_authz.useHttpHeader:
        # the front end does the logging in (Buildbot's documented Apache recipe protects /login)
        if site_authz.httpLoginUrl and authz.current_username() is None:
            return authz._redirect(site_authz.httpLoginUrl)
        return _back(next_page)
    if site_authz.auth is None:
        return render_page("login.html", "Login", status=404, next_page=next_page,
                           unavailable=True)
    if request.method != "POST":
        return render_page("login.html", "Login", next_page=next_page, unavailable=False)
    if not authz.csrf_valid():
        return render_page("login.html", "Login", status=403, next_page=next_page,
                           unavailable=False,
                           problem="The login form had expired; please try again.")
    user = request.form.get("username", "")
    password = request.form.get("passwd", "")
    if not user or not password or len(user) > MAX_FIELD or len(password) > MAX_FIELD:
        log.warning("failed login for %r from %s (login form: a field missing or too "
                    "long)", user[:64], request.remote_addr)
        return authz._redirect(to_root() + "authfail")
    if not authz._check_credentials(site_authz, user, password, "login form"):
        return authz._redirect(to_root() + "authfail")  # logged by _check_credentials
    authz.log_in(user)
    log.info("%r logged in from %s", user[:64], request.remote_addr)
    return _back(next_page)


@bp.route("/logout", methods=["GET", "HEAD", "POST"])
def logout() -> Response:
    next_page = authz.safe_next(request.values.get("next")) or ""
    if request.method != "POST":
        return render_page("logout.html", "Logout", next_page=next_page)
    if not authz.csrf_valid():
        return render_page("logout.html", "Logout", status=403, next_page=next_page,
                           problem="The logout form had expired; please try again.")
    authz.log_out()
    return _back(next_page)


@bp.route("/authfail", methods=["GET", "HEAD", "POST"])
def authfail() -> Response:
    return render_page("authfail.html", "Authentication Failed")


@bp.route("/authzfail", methods=["GET", "HEAD", "POST"])
def authzfail() -> Response:
    return render_page("authzfail.html", "Authorization Failed")


def register(app: Flask) -> None:
    """Mount the login/logout/failure pages and the users pages."""
    app.register_blueprint(bp)
    app.register_blueprint(users.bp)
