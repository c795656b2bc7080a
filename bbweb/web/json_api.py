"""``/json``: Buildbot 0.8's JSON status API over the status database.

A request is parsed (path segments, global flags), resolved in the resource tree of
:mod:`bbweb.status.jsontree`, rendered (``select``, ``filter``, ``compact``, ``as_text``,
``callback``) and sent with 0.8's headers. ``…/help`` on any node is an HTML page.

Deliberate differences from 0.8 are listed in ``docs/compat.md`` (JSON API section).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from flask import Blueprint, Response, render_template, request
from werkzeug.http import http_date

from bbweb.plugins.site import site
from bbweb.status import jsoncache, jsondocs
from bbweb.status.jsontree import (
    NOT_AVAILABLE,
    JsonRequest,
    Node,
    RootNode,
    select_document,
)
from bbweb.web.sessions import site_authz

bp = Blueprint("json_api", __name__)

CALLBACK = re.compile(r"[a-zA-Z$_][a-zA-Z$0-9._]*")
_INTEGER = re.compile(r"[ ]*[-+]?[0-9]+[ ]*")
# ``max`` and ``numbuilds`` above this are lowered to it: a page must stay a page.
MAX_BUILDS_ARG = 1000
EXPIRES_SECONDS = 60

FLAGS_HELP = [
    ("as_text", "1 or true: serve the document as text/plain, indented and filtered "
                "(changes the defaults of compact and filter)."),
    ("compact", "1 or true: no whitespace at all; 0 or false: indented by 2. Keys are "
                "always sorted. Default: true unless as_text."),
    ("filter", "1 or true: drop empty values (null, false, empty strings, lists and "
               "objects) recursively; 0 is kept. Default: as_text."),
    ("select", "May be given several times: build the document from the named sub-paths "
               "of this node instead of the node itself (an empty value includes the "
               "node's own document). Negative build numbers count from the latest build; "
               "write %252F for a / inside a name."),
    ("numbuilds", "Slave documents: how many of each builder's newest builds are scanned "
                  f"for the builds this slave ran (default: build cache size - 1, at most "
                  f"{MAX_BUILDS_ARG})."),
    ("max", "builds/_all: how many of the newest builds to return (default: build cache "
            f"size, at most {MAX_BUILDS_ARG})."),
    ("callback", "JSONP: wrap the document as callback(document); - the name must be a "
                 "JavaScript identifier or dotted path. Refused (400) on a site whose view "
                 "is restricted."),
]


class JsonError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


@dataclass
class Flags:
    as_text: bool = False
    compact: bool = True
    filter: bool = False
    callback: str | None = None


def _args() -> dict[str, str]:
    """The query's first value of each argument, read once: werkzeug's ``args.get``
    builds (and catches) an exception for each argument that is absent, most of them."""
    args: dict[str, str] | None = getattr(request, "bbweb_json_args", None)
    if args is None:
        args = dict(request.args.items())
        request.bbweb_json_args = args  # type: ignore[attr-defined]
    return args


def _bool_arg(name: str, default: bool) -> bool:
    value = _args().get(name)
    if value is None:
        return default
    value = value.strip().lower()
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    return default


def _int_arg(name: str) -> int | None:
    value = _args().get(name)
    if value is None or value.strip() == "":
        return None
    if not _INTEGER.fullmatch(value):
        raise JsonError(400, "Bad argument", f"{name} must be an integer, not {value!r}")
    return min(max(int(value), 0), MAX_BUILDS_ARG)


def _flags() -> Flags:
    as_text = _bool_arg("as_text", False)
    callback = _args().get("callback")
    return Flags(as_text=as_text, compact=_bool_arg("compact", not as_text),
                 filter=_bool_arg("filter", as_text),
                 callback=callback if callback and CALLBACK.fullmatch(callback) else None)


def refuse_private_jsonp(flags: Flags) -> None:
    """JSONP only where anybody may see the site.

    A JSONP answer is a script, and any web page may include a script from another site:
    the visitor's browser sends its session cookie or cached HTTP Basic credentials along,
    and the including page reads the private document. So on a site whose ``view`` is
    restricted, ``callback=`` is refused with 400 (rather than answered without the
    wrapper: a script that silently gets something else is harder to diagnose than a
    message). Plain JSON is unaffected; browsers keep it from other sites' pages."""
    if not _args().get("callback"):
        return
    if site_authz().value("view") is True:
        return
    flags.callback = None
    raise JsonError(400, "Bad argument", "callback= (JSONP) is not served on a site whose "
                                         "view is restricted: fetch the plain JSON instead")


def path_segments() -> tuple[list[str], bool]:
    """The decoded segments after ``/json`` and whether the URL ended with ``/``.

    Segments are split on the *raw* request URI when the server provides it (gunicorn and
    Werkzeug do), so a name containing ``/`` can be addressed as ``%2F``.
    """
    decoded = request.path
    trailing = decoded.endswith("/") and decoded != "/"
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        parts = urlsplit(raw).path.split("/")
        want = decoded.lstrip("/")
        for start in range(len(parts)):
            if "/".join(unquote(p) for p in parts[start:]) == want:
                # parts[start] is "json" (the blueprint's mount point)
                return [unquote(p) for p in parts[start + 1:] if p], trailing
    parts = decoded.split("/")
    return [p for p in parts[2:] if p], trailing


def _download_name(segments: list[str]) -> str:
    """0.8 offered every document as a download named after its path
    (``buildbot.json`` for the root); we keep the name filesystem-safe."""
    if not segments:
        return "buildbot.json"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(segments))[:200] + ".json"


def _render(data: Any, flags: Flags, status: int = 200,
            segments: list[str] | None = None, spliced: bool = False) -> Response:
    """``spliced``: ``data`` may hold kept build documents (encoded text)."""
    if flags.filter:
        if spliced:
            data = jsoncache.plain(data)
        data = jsondocs.filter_empty(data)
        spliced = False
    # kept build documents are spliced in as the text they were encoded to
    body = jsoncache.dumps(data, compact=flags.compact, spliced=spliced)
    if flags.as_text:
        content_type = "text/plain; charset=utf-8"
    elif flags.callback:
        content_type = "application/javascript"
    else:
        content_type = "application/json"
    if flags.callback:
        body = f"{flags.callback}({body});"
    resp = Response(body, status=status, content_type=content_type)
    resp.headers["Access-Control-Allow-Origin"] = "*"
    resp.headers["Expires"] = _expires()
    resp.headers["Pragma"] = "no-cache"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    if segments is not None and not flags.as_text:
        resp.headers["Content-Disposition"] = \
            f'attachment; filename="{_download_name(segments)}"'
    return resp


_expires_memo: tuple[int, str] = (-1, "")


def _expires() -> str:
    """``Expires``: a minute from now, in whole seconds (made once a second: the date's
    formatting cost more than the rest of the headers)."""
    global _expires_memo
    now = int(time.time())
    second, text = _expires_memo
    if second != now:
        text = http_date(now + EXPIRES_SECONDS)
        _expires_memo = (now, text)
    return text


def _error(exc: JsonError, flags: Flags) -> Response:
    return _render({"error": exc.error, "message": exc.message}, flags, exc.status)


def _resolve_or_404(req: JsonRequest, segments: list[str]) -> Node:
    node: Node = RootNode()
    for depth, segment in enumerate(segments):
        child = node.child(req, segment)
        if child is None:
            where = "/".join(["json"] + segments[:depth])
            raise JsonError(404, NOT_AVAILABLE["error"], f"no {segment!r} under /{where}")
        node = child
    return node


@bp.route("", methods=["GET"])
@bp.route("/", methods=["GET"])
@bp.route("/<path:_subpath>", methods=["GET"])
def json_resource(_subpath: str = "") -> Response:
    flags = _flags()
    segments, trailing = path_segments()
    s = site()
    try:
        refuse_private_jsonp(flags)
        max_builds = _int_arg("max")
        numbuilds = _int_arg("numbuilds")
        with s.db.read() as conn:
            req = JsonRequest(conn=conn, cfg=s.config, max_builds=max_builds,
                              numbuilds=numbuilds, doc_cache=s.build_docs, made_docs=s.made_docs,
                              finished_slaves=s.finished_slaves)
            if segments and segments[-1] == "help":
                node = _resolve_or_404(req, segments[:-1])
                return help_page(req, node, segments[:-1], trailing)
            node = _resolve_or_404(req, segments)
            selects = request.args.getlist("select") if "select" in _args() else []
            data = select_document(req, node, selects) if selects else node.document(req)
    except JsonError as exc:
        return _error(exc, flags)
    return _render(data, flags, segments=segments, spliced=req.raw_docs)


# -- help pages ------------------------------------------------------------------------------

def _qpath(segments: list[str]) -> str:
    return "/".join(quote(s, safe="") for s in segments)


def _example_values(req: JsonRequest) -> tuple[str, int, str]:
    """The first builder that has a build, its latest build number, its first slave."""
    rows = req.builders()
    builders = [rows[name] for name in req.cfg.builders]  # config order
    chosen = next((b for b in builders if b.next_number > 0), None)
    if chosen is None and builders:
        chosen = builders[0]
    builder = chosen.name if chosen else "BUILDER"
    number = chosen.next_number - 1 if chosen and chosen.next_number > 0 else 0
    slavenames = req.cfg.builders[builder].slavenames if builder in req.cfg.builders else []
    slave = slavenames[0] if slavenames else next(iter(req.cfg.slaves), "SLAVE")
    return builder, number, slave


def _examples(req: JsonRequest, to_root: str) -> list[tuple[str, str]]:
    builder, number, slave = _example_values(req)
    b = quote(builder, safe="")
    s = quote(slave, safe="")
    examples: list[tuple[str, list[tuple[str, str]]]] = [
        (f"builders/{b}/builds", [("select", "-1"), ("select", "-2")]),
        (f"builders/{b}", [("select", ""), ("select", "slaves")]),
        ("", [("select", f"slaves/{s}/"), ("select", "project"),
              ("select", f"builders/{b}/builds/{number}")]),
        (f"builders/{b}/builds/{number}", []),
        (f"builders/{b}/builds/_all", [("max", "5")]),
        (f"slaves/{s}", [("numbuilds", "5")]),
        ("project", [("callback", "showProject")]),
    ]
    out = []
    for path, args in examples:
        query = _query(args)
        label = "/json" + (f"/{path}" if path else "") + (f"?{query}" if query else "")
        out.append((label, f"{to_root}{path}?{_query(args + [('as_text', '1')])}"))
    return out


def _query(args: list[tuple[str, str]]) -> str:
    """A query string that keeps ``/`` readable (``select=slaves/S``)."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='/')}" for k, v in args)


def help_page(req: JsonRequest, node: Node, segments: list[str], trailing: bool) -> Response:
    """The HTML help of ``node`` (at ``/json/<segments>/help``). Links are relative to
    the page, so they are right at every depth and behind a path prefix."""
    depth = len(segments) + (1 if trailing else 0)
    to_root = "../" * depth if depth else "./"
    here = _qpath(segments)
    base = to_root + (here + "/" if here else "")
    children = [(name, base + quote(name, safe=""), base + quote(name, safe="") + "/help")
                for name in node.child_names(req)]
    parent_help = None
    if segments:
        parent = _qpath(segments[:-1])
        parent_help = to_root + (parent + "/" if parent else "") + "help"
    title = f"{node.title} help"
    html = render_template(
        "json/help.html", title=title, help_text=node.help_text,
        path="/json" + ("/" + "/".join(segments) if segments else ""),
        self_href=base or to_root, parent_help=parent_help, children=children,
        flags=FLAGS_HELP, examples=_examples(req, to_root))
    resp = Response(html, content_type="text/html; charset=utf-8")
    resp.headers["Access-Control-Allow-Origin"] = "*"
    return resp
