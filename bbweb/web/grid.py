"""``/grid`` (sources across, builders down) and ``/tgrid`` (the same, transposed).

The grid itself is built by :mod:`bbweb.status.grid` in a fixed handful of
queries. Differences from 0.8 (recorded in ``docs/compat.md``): a ``width``/``length``
that is not a positive whole number is a 400 page instead of a server error, values over
:data:`~bbweb.status.grid.MAX_WIDTH` count as that, builders are listed in natural order as
on ``/builders``, and every name and revision is escaped.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, request

from bbweb.plugins.site import site
from bbweb.status import grid as status_grid
from bbweb.status import overview
from bbweb.status.naming import natural_key
from bbweb.web.helpers import builder_infos, page_root
from bbweb.web.rendering import render_page

bp = Blueprint("grid", __name__)

METHODS = ["GET", "POST"]
_WHOLE = re.compile(r"\s*\+?([0-9]+)\s*")


class BadArgument(ValueError):
    """A query argument the page cannot use; the message says which and why."""


def size_arg(name: str) -> int:
    """``width``/``length``: default 5, at most ``MAX_WIDTH``; anything but a whole number
    of at least 1 is refused (0.8 failed with a server error on non-integers)."""
    value = request.args.get(name)
    if value is None or value.strip() == "":
        return status_grid.DEFAULT_WIDTH
    m = _WHOLE.fullmatch(value)
    if not m:
        raise BadArgument(f"{name} must be a whole number of at least 1, not {value!r}.")
    digits = m.group(1).lstrip("0") or "0"
    n = int(digits) if len(digits) <= 6 else status_grid.MAX_WIDTH
    if n < 1:
        raise BadArgument(f"{name} must be at least 1, not {n}.")
    return min(n, status_grid.MAX_WIDTH)


def _page(template: str, size_name: str, **extra: Any) -> Response:
    """Parse the shared arguments, build the grid and render ``template``."""
    s = site()
    cfg = s.config
    try:
        size = size_arg(size_name)
    except BadArgument as exc:
        return render_page("error.html", "Bad Request", status=400, message=str(exc),
                           to_root=page_root())
    categories = [c for c in dict.fromkeys(request.args.getlist("category")) if c]
    branch = request.args.get("branch", "")
    branches = overview.branch_filter([branch])
    names = sorted((n for n, b in cfg.builders.items()
                    if not categories or b.category in categories), key=natural_key)
    with s.db.read() as conn:
        rows = builder_infos(conn, names)
        result = status_grid.grid(conn, cfg, rows, names, size, branches)
    title = f"BuildBot: {cfg.title}" if cfg.title else "BuildBot"
    return render_page(template, title, grid=result, categories=categories,
                       branch=branch or None, to_root=page_root(), **extra)


@bp.route("/grid", methods=METHODS)
def grid() -> Response:
    return _page("grid.html", "width")


@bp.route("/tgrid", methods=METHODS)
def tgrid() -> Response:
    rev_order = request.args.get("rev_order", "asc")
    if rev_order not in ("asc", "desc"):
        rev_order = "asc"
    return _page("tgrid.html", "length", rev_order=rev_order)
