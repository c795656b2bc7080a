"""``/png`` (and ``/badge.svg``): a status badge of a builder's build.

``/png?builder=B[&number=N][&revision=R][&size=small|normal|large][&format=svg]``; any
sub-path of ``/png`` is the same. The build is the newest *finished* build by default
(a running build has no result to show), build ``number`` (negative counts back from the
latest started) or the newest build, among the last :data:`REVISION_SEARCH`, whose
default-codebase ``got_revision`` is ``revision``. Anything not found, not finished or
not parseable gives the "unknown" badge with status 200. A lookup that fails (the
database is unreachable, a bug) is logged with its traceback and answered with the
"unknown" image, status 503 and ``Cache-Control: no-store`` (see :func:`_answer`).

The images are our own: drawn here at request time (then cached) with a small bitmap font
and encoded as PNG with zlib, so no imaging library is needed. Colours follow the result
colours of ``default.css``. ``Cache-Control: public, max-age=60`` lets a CDN hold a badge
briefly; the ETag is the image's digest.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import zlib
from functools import lru_cache

from flask import Blueprint, Response, request
from markupsafe import escape

from bbweb.plugins.site import site
from bbweb.status import overview, queries
from bbweb.status.records import BuildInfo
from bbweb.values.results import result_name

bp = Blueprint("badges", __name__)
log = logging.getLogger("bbweb.badges")

REVISION_SEARCH = 200
SIZES = {"small": (32, 14), "normal": (84, 18), "large": (120, 80)}
COLOURS = {  # as in default.css
    "success": "#7bc043", "warnings": "#f5a623", "failure": "#e5636b",
    "skipped": "#a8d8ea", "exception": "#b05fc4", "retry": "#b05fc4",
    "cancelled": "#9b9b9b", "unknown": "#666666",
}
LABEL_COLOUR = "#444444"
TEXT_COLOUR = "#f9f9f9"
WORDS = {  # result -> (small word, normal/large word)
    "success": ("OK", "success"), "warnings": ("W", "warning"),
    "failure": ("FAIL", "failed"), "skipped": ("SKIP", "skipped"),
    "exception": ("EXC", "except"), "retry": ("RETRY", "retry"),
    "cancelled": ("STOP", "cancel"), "unknown": ("?", "unknown"),
}

# -- a small bitmap font: 7 rows above the baseline, 2 below (g, p, y) ------------------------

_GLYPHS = {
    "a": ["", "", ".###.", "....#", ".####", "#...#", ".####"],
    "b": ["#....", "#....", "####.", "#...#", "#...#", "#...#", "####."],
    "c": ["", "", ".###.", "#....", "#....", "#....", ".###."],
    "d": ["....#", "....#", ".####", "#...#", "#...#", "#...#", ".####"],
    "e": ["", "", ".###.", "#...#", "#####", "#....", ".###."],
    "f": ["..##", ".#..", "###.", ".#..", ".#..", ".#..", ".#.."],
    "g": ["", "", ".####", "#...#", "#...#", "#...#", ".####", "....#", ".###."],
    "i": [".#.", "...", "##.", ".#.", ".#.", ".#.", "###"],
    "k": ["#...", "#...", "#..#", "#.#.", "##..", "#.#.", "#..#"],
    "l": ["##.", ".#.", ".#.", ".#.", ".#.", ".#.", "###"],
    "n": ["", "", "####.", "#...#", "#...#", "#...#", "#...#"],
    "o": ["", "", ".###.", "#...#", "#...#", "#...#", ".###."],
    "p": ["", "", "####.", "#...#", "#...#", "#...#", "####.", "#....", "#...."],
    "r": ["", "", "#.##", "##..", "#...", "#...", "#..."],
    "s": ["", "", ".####", "#....", ".###.", "....#", "####."],
    "t": [".#..", ".#..", "###.", ".#..", ".#..", ".#..", "..##"],
    "u": ["", "", "#...#", "#...#", "#...#", "#...#", ".####"],
    "w": ["", "", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."],
    "x": ["", "", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"],
    "y": ["", "", "#...#", "#...#", "#...#", "#...#", ".####", "....#", ".###."],
    "A": [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
    "C": [".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."],
    "E": ["#####", "#....", "#....", "####.", "#....", "#....", "#####"],
    "F": ["#####", "#....", "#....", "####.", "#....", "#....", "#...."],
    "I": ["###", ".#.", ".#.", ".#.", ".#.", ".#.", "###"],
    "K": ["#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"],
    "L": ["#....", "#....", "#....", "#....", "#....", "#....", "#####"],
    "O": [".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."],
    "P": ["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."],
    "R": ["####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"],
    "S": [".####", "#....", "#....", ".###.", "....#", "....#", "####."],
    "T": ["#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."],
    "W": ["#...#", "#...#", "#...#", "#.#.#", "#.#.#", "##.##", "#...#"],
    "X": ["#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"],
    "Y": ["#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."],
    "?": [".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."],
    " ": ["..."],
}
GLYPH_ROWS = 9


def _glyph(ch: str) -> list[str]:
    rows = _GLYPHS.get(ch, _GLYPHS["?"])
    width = max(len(r) for r in rows)
    return [r.ljust(width, ".") for r in rows] + ["." * width] * (GLYPH_ROWS - len(rows))


def text_width(text: str, scale: int = 1) -> int:
    return (sum(len(_glyph(c)[0]) + 1 for c in text) - 1) * scale if text else 0


class Canvas:
    """An RGBA image, rows of bytes, fully transparent to begin with."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.rows = [bytearray(width * 4) for _ in range(height)]

    def pixel(self, x: int, y: int, rgba: tuple[int, int, int, int]) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            self.rows[y][x * 4:x * 4 + 4] = bytes(rgba)

    def rect(self, x0: int, y0: int, x1: int, y1: int, colour: str) -> None:
        rgba = _rgba(colour)
        for y in range(max(y0, 0), min(y1, self.height)):
            for x in range(max(x0, 0), min(x1, self.width)):
                self.rows[y][x * 4:x * 4 + 4] = rgba

    def round_corners(self, radius: int = 3) -> None:
        """Clear the pixels outside a circle of ``radius`` in each corner."""
        r = radius
        for dy in range(r):
            for dx in range(r):
                # distance from the corner circle's centre, measured at pixel centres
                if (r - dx - 0.5) ** 2 + (r - dy - 0.5) ** 2 > r * r:
                    for x, y in ((dx, dy), (self.width - 1 - dx, dy),
                                 (dx, self.height - 1 - dy),
                                 (self.width - 1 - dx, self.height - 1 - dy)):
                        self.pixel(x, y, (0, 0, 0, 0))

    def text(self, x: int, y: int, text: str, colour: str, scale: int = 1) -> None:
        """``text`` with its top (ascender line) at ``y``."""
        rgba = tuple(_rgba(colour))
        for ch in text:
            g = _glyph(ch)
            for gy, row in enumerate(g):
                for gx, bit in enumerate(row):
                    if bit == "#":
                        for sy in range(scale):
                            for sx in range(scale):
                                self.pixel(x + gx * scale + sx, y + gy * scale + sy,
                                           rgba)  # type: ignore[arg-type]
            x += (len(g[0]) + 1) * scale

    def centred_text(self, x0: int, x1: int, y: int, text: str, colour: str,
                     scale: int = 1) -> None:
        self.text(x0 + (x1 - x0 - text_width(text, scale)) // 2, y, text, colour, scale)

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(row) for row in self.rows)

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

        return (b"\x89PNG\r\n\x1a\n"
                + chunk(b"IHDR", struct.pack(">IIBBBBB", self.width, self.height,
                                             8, 6, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _rgba(colour: str) -> bytes:
    c = colour.lstrip("#")
    return bytes([int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255])


@lru_cache(maxsize=64)
def badge_png(result: str, size: str) -> bytes:
    """The PNG badge of ``result`` (a word of :data:`COLOURS`) at ``size``."""
    result = result if result in COLOURS else "unknown"
    width, height = SIZES[size]
    colour = COLOURS[result]
    small_word, word = WORDS[result]
    img = Canvas(width, height)
    if size == "small":
        img.rect(0, 0, width, height, colour)
        img.centred_text(0, width, 4, small_word, TEXT_COLOUR)
    elif size == "normal":
        split = 36
        img.rect(0, 0, split, height, LABEL_COLOUR)
        img.rect(split, 0, width, height, colour)
        img.centred_text(0, split, 5, "build", TEXT_COLOUR)
        img.centred_text(split, width, 5, word, TEXT_COLOUR)
    else:
        img.rect(0, 0, width, 18, LABEL_COLOUR)
        img.rect(0, 18, width, height, colour)
        img.centred_text(0, width, 5, "build status", TEXT_COLOUR)
        img.centred_text(0, width, 28, word, TEXT_COLOUR, scale=2)
        img.centred_text(0, width, 62, "build", TEXT_COLOUR)
    img.round_corners(4 if size == "large" else 3)
    return img.png()


def badge_svg(result: str, title: str) -> bytes:
    """A two-part SVG badge ("build" | result word); ``title`` (escaped) as its tooltip."""
    result = result if result in COLOURS else "unknown"
    word = WORDS[result][1]
    label_w = 40
    word_w = 8 + 7 * len(word)
    width = label_w + word_w
    t = escape(title)
    svg = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" '
        f'role="img" aria-label="build: {escape(word)}">'
        f"<title>{t}</title>"
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3"/></clipPath>'
        f'<g clip-path="url(#r)">'
        f'<rect width="{label_w}" height="20" fill="{LABEL_COLOUR}"/>'
        f'<rect x="{label_w}" width="{word_w}" height="20" fill="{COLOURS[result]}"/></g>'
        f'<g fill="{TEXT_COLOUR}" text-anchor="middle" '
        f'font-family="DejaVu Sans,Verdana,Geneva,sans-serif" font-size="11">'
        f'<text x="{label_w // 2}" y="14">build</text>'
        f'<text x="{label_w + word_w // 2}" y="14">{escape(word)}</text></g></svg>\n')
    return svg.encode("utf-8")


# -- which build --------------------------------------------------------------------------------

def _int_arg(name: str) -> int | None:
    value = request.args.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value.strip())
    except ValueError:
        raise LookupError(name) from None


def find_build() -> BuildInfo | None:
    """The build the arguments name, or None (unknown builder/build, bad number)."""
    s = site()
    name = request.args.get("builder", "")
    if name not in s.config.builders:
        return None
    try:
        number = _int_arg("number")
    except LookupError:
        return None
    revision = request.args.get("revision") or None
    with s.db.read() as conn:
        builder = queries.get_builder(conn, name)
        if builder is None:
            return None
        if revision is not None:
            recent = queries.latest_builds(conn, builder, REVISION_SEARCH, details=False)
            props = overview.build_property_values(conn, [b.id for b in recent],
                                                   ["got_revision"])
            for b in recent:  # newest first
                b.properties = props.get(b.id, [])
                if overview._got_revision(b, "") == revision:
                    return b
            return None
        if number is None:
            latest = queries.latest_builds(conn, builder, 1, details=False,
                                           finished_only=True)
            return latest[0] if latest else None
        return queries.get_build(conn, builder, number, details=False)


def _result_word() -> tuple[str, str, bool]:
    """(result word for the badge, tooltip text, whether the lookup failed)."""
    try:
        build = find_build()
    except Exception:  # the database is down, a bug: say so in the log, not in the cache
        log.exception("badge for builder %r: the build could not be looked up",
                      request.args.get("builder", "")[:100])
        return "unknown", f"{request.args.get('builder', '')}: unknown (error)", True
    if build is None or build.results is None:
        return "unknown", f"{request.args.get('builder', '')}: unknown", False
    word = result_name(build.results)
    return word, f"{build.builder} #{build.number}: {word}", False


def _answer(body: bytes, content_type: str, filename: str, failed: bool = False
            ) -> Response:
    """The badge; after a failed lookup the "unknown" image with 503 and ``no-store``:
    browsers still draw an image body whatever the status, but no cache (a CDN, an
    image proxy in front of a README) keeps the error for after the site has recovered,
    and a monitor sees the failure."""
    if failed:
        resp = Response(body, status=503, content_type=content_type)
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["Retry-After"] = "60"
        resp.headers["Content-Disposition"] = f'inline; filename="{filename}"'
        return resp
    resp = Response(body, content_type=content_type)
    resp.headers["Cache-Control"] = "public, max-age=60"
    resp.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    resp.set_etag(hashlib.sha1(body).hexdigest())
    resp.make_conditional(request)  # 304 when the client's copy is current
    return resp


@bp.route("/png")
@bp.route("/png/<path:subpath>")
def png(subpath: str = "") -> Response:
    if request.args.get("format") == "svg":
        return svg()
    size = request.args.get("size", "normal")
    size = size if size in SIZES else "normal"
    word, _title, failed = _result_word()
    return _answer(badge_png(word, size), "image/png", f"{word}_{size}.png", failed)


@bp.route("/badge.svg")
def svg() -> Response:
    word, title, failed = _result_word()
    return _answer(badge_svg(word, title), "image/svg+xml; charset=utf-8", f"{word}.svg",
                   failed)


__all__ = ["badge_png", "badge_svg", "bp", "find_build"]
