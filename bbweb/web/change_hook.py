"""``/change_hook/<dialect>``: changes pushed in by repositories and scripts.

Dialects are plugins (entry-point group ``bbweb.change_hooks``) enabled by
``WebStatus(change_hook_dialects=...)`` or plugins.toml. A dialect that is not enabled is
a 404: the URL does not exist on this site.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, request

from bbweb.app import site
from bbweb.engine.changes import ChangeError, add_change
from bbweb.web.hook_auth import check_hook_auth

bp = Blueprint("change_hook", __name__)
log = logging.getLogger("bbweb.change_hook")


def _text(status: int, message: str) -> Response:
    return Response(message + ("\n" if message else ""), status=status,
                    mimetype="text/plain")


@bp.route("", methods=["GET", "POST"], strict_slashes=False)
@bp.route("/<dialect>", methods=["GET", "POST"])
def change_hook(dialect: str = "base") -> Any:
    s = site()
    denied = check_hook_auth(s.config.web.change_hook_auth, s.basedir)
    if denied is not None:
        return denied
    hook = s.change_hooks.get(dialect)
    if hook is None:
        return _text(404, f"The dialect specified, {dialect!r}, is not enabled in "
                          "change_hook_dialects")
    try:
        changes = hook.get_changes(request)
    except PermissionError as exc:  # a signature or token that does not verify
        log.warning("change hook %r refused a request from %s: %s", dialect,
                    request.remote_addr, exc)
        return _text(403, str(exc))
    except ValueError as exc:
        return _text(400, str(exc))
    except Exception:
        log.exception("change hook %r failed to parse a request", dialect)
        return _text(500, "Error processing changes.")
    if not changes:
        return _text(200, "no changes found")
    try:
        with s.db.write() as conn:
            ids = [add_change(conn, s.config, ch) for ch in changes]
    except ChangeError as exc:
        return _text(400, str(exc))
    log.info("change hook %r accepted change(s) %s", dialect, ids)
    return Response("", status=202)
