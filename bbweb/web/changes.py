"""``/changes`` (the change sources) and ``/changes/N`` (one change).

The change block (``change_macros.html``) is shared with the build page's "All Changes".
A missing change is a 404 page (0.8 answered bare text with status 200).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response
from markupsafe import Markup

from bbweb.plugins.site import site
from bbweb.status import detail, jsondocs, queries
from bbweb.status.records import ChangeInfo
from bbweb.values.numbers import in_int_range
from bbweb.web import decorations
from bbweb.web.rendering import render_page

bp = Blueprint("changes", __name__)

METHODS = ["GET", "POST"]
_NUMBER = re.compile(r"[0-9]+")


@bp.app_template_filter("change_revision")
def change_revision(change: ChangeInfo) -> Markup:
    """The change's revision, linked to the change's own ``revlink`` when its source gave
    one, else through the configured ``revlink``."""
    s = site()
    url = change.revlink or decorations.revision_url(
        change.revision, change.repository, s.config.web.revlink, s.config.revlink)
    return decorations.revlink_markup(change.revision, url)


@bp.app_template_filter("property_text")
def property_text(value: Any) -> str:
    """A property value as text (JSON for non-strings), cut at 500 characters."""
    return detail.shorten(detail.value_text(value))[0]


@bp.route("/changes", methods=METHODS)
def change_sources() -> Response:
    sources = [jsondocs.change_source_doc(src)["description"]
               for src in site().config.change_sources]
    return render_page("change_sources.html", "Buildbot", sources=sources)


@bp.route("/changes/<number>", methods=METHODS)
def change(number: str) -> Response:
    if not _NUMBER.fullmatch(number):
        return render_page("error.html", "Not Found", status=404,
                           message="Expected a change number")
    n = int(number)
    found = None
    if in_int_range(n):
        with site().db.read() as conn:
            found = queries.get_change(conn, n)
    if found is None:
        return render_page("error.html", "Not Found", status=404,
                           message=f"No change number {n}")
    return render_page("change.html", f"Change #{n}", change=found)
