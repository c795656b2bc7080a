"""``/users`` (the users table) and ``/users/N`` (one user's attributes).

Both need ``showUsersPage`` (0.8 checked it on the table only). Buildbot's documented
``/users/table`` and ``/users/table/N`` are the same pages. Password hashes are never
shown.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, request

from bbweb.plugins.site import site
from bbweb.status.users import get_user, list_users
from bbweb.values.numbers import is_int_text
from bbweb.web import authz
from bbweb.web.rendering import render_page

bp = Blueprint("users", __name__)

PAGE_SIZE = 200
METHODS = ["GET", "HEAD"]


def _refused() -> Response | None:
    if authz.action_allowed("showUsersPage"):
        return None
    site_authz = authz.site_authz()
    if (authz.current_username() is None and site_authz.needs_login("showUsersPage")
            and site_authz.auth is not None and not site_authz.useHttpHeader):
        return authz._redirect(authz._relative_root() + "login?next="
                               + authz._quote(authz.current_page()))
    return authz.deny("showUsersPage")


@bp.route("/users", methods=METHODS, strict_slashes=False)
@bp.route("/users/table", methods=METHODS, strict_slashes=False)
def users_table() -> Response:
    refused = _refused()
    if refused is not None:
        return refused
    raw = request.args.get("after", "0")
    if not is_int_text(raw):
        abort(400, "after must be a user number")
    with site().db.read() as conn:
        rows, more = list_users(conn, after=int(raw), limit=PAGE_SIZE)
    return render_page("users.html", "Users", users=rows, more=more,
                       next_after=rows[-1][0] if rows else 0)


@bp.route("/users/<uid>", methods=METHODS, strict_slashes=False)
@bp.route("/users/table/<uid>", methods=METHODS, strict_slashes=False)
def user_page(uid: str) -> Response:
    refused = _refused()
    if refused is not None:
        return refused
    if not is_int_text(uid) or len(uid) > 18:
        abort(404, f"No such user: {uid!r}.")
    with site().db.read() as conn:
        user = get_user(conn, int(uid))
    if user is None:
        abort(404, f"No such user: {uid}.")
    attrs = []
    if user.bb_username:
        attrs.append(("bb_username", user.bb_username))
    attrs.extend(sorted(user.attributes.items()))
    return render_page("user.html", f"Buildbot User: {user.uid}", user=user, attrs=attrs)
