"""What the page blueprints share: the way back to the site root as the browser sees it, the
404 page, clamped integer arguments, links safe to put in an ``href``, and the rows of the
configured builders."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from flask import Response, request
from sqlalchemy.engine import Connection

from bbweb.plugins.site import site
from bbweb.status import queries
from bbweb.status.records import BuilderInfo
from bbweb.web.rendering import render_page, to_root

MAX_COUNT = 1000  # numbuilds/maxsearch above this are lowered to it: a page stays a page
INT_ARG = re.compile(r"\s*[-+]?\d+\s*")  # what int_arg accepts


def path_segment(name: Any) -> str:
    """A name as one URL path segment: everything but unreserved characters quoted, so
    spaces, ``/``, ``?`` and ``#`` in builder and slave names stay inside the segment."""
    return quote(str(name), safe="")


def page_root() -> str:
    """``to_root`` for the current page computed on the URL the browser sees: a name with
    an encoded ``/`` (``a%2Fb``) is one segment to the browser although Werkzeug decodes
    it into two."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        path = urlsplit(raw).path
        prefix = request.script_root
        if prefix and path.startswith(prefix):
            path = path[len(prefix):]
        if unquote(path) == request.path:
            return to_root(path)
    return to_root()


WEB_SCHEMES = frozenset({"", "http", "https", "ftp", "mailto"})
_STRIP_ANYWHERE = str.maketrans("", "", "\t\r\n")
_C0_OR_SPACE = "".join(chr(c) for c in range(0x21))


def safe_href(url: Any, schemes: frozenset[str]) -> str | None:
    """``url`` cleaned the way browsers clean it (tabs and newlines dropped, control
    characters and spaces trimmed), or None when its scheme is not in ``schemes`` (so a
    slave or a step cannot make a ``javascript:`` link)."""
    if not isinstance(url, str):
        return None
    cleaned = url.translate(_STRIP_ANYWHERE).strip(_C0_OR_SPACE)
    if not cleaned:
        return None
    try:
        scheme = urlsplit(cleaned).scheme.lower()
    except ValueError:
        return None
    return cleaned if scheme in schemes else None


def int_arg(name: str, default: int, *, low: int = 0, high: int = MAX_COUNT) -> int:
    """An integer argument, clamped; absent or not an integer: ``default`` (0.8 failed
    with a server error)."""
    value = request.args.get(name)
    if value is None or not INT_ARG.fullmatch(value):
        return default
    return min(max(int(value), low), high)


def not_found(message: str) -> Response:
    return render_page("error.html", "Not Found", status=404, message=message,
                       to_root=page_root())


def builder_infos(conn: Connection, names: list[str]) -> dict[str, BuilderInfo]:
    """Rows of configured builders, with a placeholder for one not in the database yet
    (no history: id -1, nothing to read)."""
    cfg = site().config
    rows = queries.builder_rows(conn, names)
    for name in names:
        if name not in rows:
            bcfg = cfg.builders[name]
            rows[name] = BuilderInfo(id=-1, name=name, category=bcfg.category,
                                     builddir=bcfg.builddir, next_number=0, active=True)
    return rows
