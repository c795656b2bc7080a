"""``/notifications`` and ``/json/notifications``: each notifier's recent deliveries and
failures (what, to whom, when, the server's answer), read from the notifications table the
master daemon writes.

Arguments: ``notifier=NAME`` (repeatable) shows only those notifiers, ``failures=1`` only
attempts that did not succeed (failed, rejected, error, or interrupted while sending),
``limit=N`` rows per notifier (default 50, at most 500). Both pages are behind the site's
``view`` check like every other page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from bbweb.plugins.site import Site, site
from bbweb.status import notifications as queries
from bbweb.web.helpers import int_arg
from bbweb.web.rendering import render_page

bp = Blueprint("notifications", __name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def configured_notifiers(s: Site) -> list[str]:
    """Names of the notifiers master.cfg and plugins.toml enable (as the daemon names
    them, except for its numbering of unnamed duplicates)."""
    names = [str(t.name) for t in s.config.status
             if isinstance(getattr(t, "name", None), str)
             and isinstance(getattr(t, "consumer_name", None), str)]
    names += [n for n, v in s.plugin_settings.section("notifiers").items()
              if v is not False and (not isinstance(v, dict) or "name" not in v)]
    names += [v["name"] for v in s.plugin_settings.section("notifiers").values()
              if isinstance(v, dict) and isinstance(v.get("name"), str)]
    return names


def _deliveries() -> tuple[dict[str, list[queries.DeliveryRecord]], dict[str, Any]]:
    s = site()
    wanted = [n for n in request.args.getlist("notifier") if n]
    failures = request.args.get("failures", "") in ("1", "true", "yes")
    limit = int_arg("limit", DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
    with s.db.read() as conn:
        names = sorted(set(queries.notifier_names(conn)) | set(configured_notifiers(s)))
        if wanted:
            names = [n for n in names if n in wanted] + \
                sorted(n for n in set(wanted) if n not in names)
        found = {name: queries.recent_deliveries(conn, name, limit, failures_only=failures)
                 for name in names}
    return found, {"failures": failures, "limit": limit, "notifier": wanted}


@bp.get("/notifications")
def notifications_page() -> Response:
    found, args = _deliveries()
    return render_page("notifications.html", "Notifications", notifiers=found, args=args)


@bp.get("/json/notifications")
def notifications_json() -> Response:
    found, args = _deliveries()
    return jsonify({"notifiers": {name: [r.as_dict() for r in rows]
                                  for name, rows in found.items()},
                    "failures_only": args["failures"], "limit": args["limit"]})
