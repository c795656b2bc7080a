"""The URLs under ``/builders/X/builds/N``: which page one names, and the relative links
between those pages. A builder, step or log name may hold a ``/``, so the raw URL
decides (:func:`request_segments`), not Werkzeug's decoded path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from flask import Response, request

from bbweb.web.rendering import render_page

METHODS = ["GET", "POST"]
BUILD_RULE = "/builders/<path:_builder>/builds/<int(signed=True):_number>"
_NUMBER = re.compile(r"-?[0-9]+")


def segment(name: Any) -> str:
    """A name as one URL path segment (spaces, ``/``, ``?``, ``#`` all quoted)."""
    return quote(str(name), safe="")


LOG_RULE = BUILD_RULE + "/steps/<path:_step>/logs/<path:_log>"


# -- which page a URL names ----------------------------------------------------------------------

def request_segments() -> list[str]:
    """The decoded path segments of this request as the browser sent them: split on the raw
    URI (when the server provides it, as gunicorn and Werkzeug do) so that ``%2F`` stays
    inside its segment. A trailing slash gives a last empty segment."""
    decoded = request.path
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        parts = urlsplit(raw).path.split("/")
        want = decoded.lstrip("/")
        for start in range(1, len(parts)):
            if "/".join(unquote(p) for p in parts[start:]) == want:
                return [unquote(p) for p in parts[start:]]
    return want.split("/") if (want := decoded.lstrip("/")) else []


@dataclass
class Target:
    """What a URL under ``/builders/X/builds/N`` asks for."""

    kind: str  # build | steps | step | log | text | chunks
    builder: str
    number: int
    step: str = ""
    log: str = ""
    depth: int = 0  # path segments, for the relative way back to the root
    rest: list[str] = field(default_factory=list)

    @property
    def to_root(self) -> str:
        return "../" * (self.depth - 1) if self.depth > 1 else "./"


def parse_target() -> Target | None:
    segs = request_segments()
    depth = len(segs)
    if len(segs) < 4 or segs[0] != "builders" or segs[2] != "builds" \
            or not _NUMBER.fullmatch(segs[3]):
        return None
    builder, number = segs[1], int(segs[3])
    rest = segs[4:]
    if rest and rest[-1] == "":  # a trailing slash
        rest = rest[:-1]

    def target(kind: str, step: str = "", log: str = "") -> Target:
        return Target(kind, builder, number, step=step, log=log, depth=depth, rest=rest)

    if not rest:
        return target("build")
    if rest[0] != "steps":
        return None
    if len(rest) == 1:
        return target("steps")
    if len(rest) == 2:
        return target("step", step=rest[1])
    if rest[2] != "logs" or len(rest) < 4:
        return None
    if len(rest) == 4:
        return target("log", step=rest[1], log=rest[3])
    if len(rest) == 5 and rest[4] in ("text", "chunks"):
        return target(rest[4], step=rest[1], log=rest[3])
    return None


def not_found(message: str) -> Response:
    return render_page("error.html", "Not Found", status=404, message=message)


# -- links ---------------------------------------------------------------------------------------

@dataclass
class Links:
    """Relative links from the current page (``root`` is its way back to the site root)."""

    root: str
    builder_name: str
    number: int

    @property
    def builder(self) -> str:
        return f"{self.root}builders/{segment(self.builder_name)}"

    @property
    def build(self) -> str:
        return f"{self.builder}/builds/{self.number}"

    def step(self, step: str) -> str:
        return f"{self.build}/steps/{segment(step)}"

    def log(self, step: str, log: str) -> str:
        return f"{self.step(step)}/logs/{segment(log)}"

    def slave(self, name: str) -> str:
        return f"{self.root}buildslaves/{segment(name)}"

    def change(self, number: int) -> str:
        return f"{self.root}changes/{number}"
