"""``/png`` and ``/badge.svg``: which build, sizes, pixels, unknown cases,
headers and the SVG twin, on SQLite and PostgreSQL. PNGs are decoded here (no Pillow)."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
import zlib

import pytest
import sqlalchemy as sa

from bbweb.db.schema import builders, builds
from bbweb.engine import builds as eb
from bbweb.web.badges import COLOURS, badge_png
from tests.web.test_feeds import feed_client, feed_master  # noqa: F401  (fixtures)

SVG_NS = "{http://www.w3.org/2000/svg}"


def decode_png(data: bytes) -> tuple[int, int, list[list[tuple[int, int, int, int]]]]:
    """(width, height, rows of RGBA pixels) of an 8-bit RGBA, non-interlaced PNG whose
    rows all use filter 0 (what bbweb writes); every chunk's CRC is checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert kind == b"IEND" and header is not None
    width, height, depth, ctype, _c, _f, interlace = header
    assert (depth, ctype, interlace) == (8, 6, 0)
    raw = zlib.decompress(idat)
    stride = width * 4 + 1
    assert len(raw) == stride * height
    rows = []
    for y in range(height):
        line = raw[y * stride:(y + 1) * stride]
        assert line[0] == 0
        rows.append([tuple(line[1 + x * 4:5 + x * 4]) for x in range(width)])
    return width, height, rows


def rgb(colour: str) -> tuple[int, int, int, int]:
    c = colour.lstrip("#")
    return (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255)


def get_png(client, query: str, path: str = "/png") -> bytes:
    resp = client.get(f"{path}?{query}" if query else path)
    assert resp.status_code == 200, (query, resp.data[:200])
    assert resp.content_type == "image/png"
    return resp.data


def test_result_of_the_right_build(feed_client):  # noqa: F811
    # runtests: #0 failure, #1 exception, #2 running; docs: #0 success, #1 failure
    normal = {r: badge_png(r, "normal") for r in COLOURS}
    assert get_png(feed_client, "builder=docs") == normal["failure"]
    assert get_png(feed_client, "builder=docs&number=0") == normal["success"]
    assert get_png(feed_client, "builder=docs&number=-2") == normal["success"]
    assert get_png(feed_client, "builder=docs&number=-1") == normal["failure"]
    # the default skips the running build; asking for it gives "unknown"
    assert get_png(feed_client, "builder=runtests") == normal["exception"]
    assert get_png(feed_client, "builder=runtests&number=2") == normal["unknown"]
    assert get_png(feed_client, "builder=runtests&number=-3") == normal["failure"]
    # any sub-path is the same
    assert get_png(feed_client, "builder=docs", "/png/x/y.png") == normal["failure"]
    assert len(set(normal.values())) == len(normal)


@pytest.mark.parametrize("query", [
    "", "builder=nosuch", "builder=idle", "builder=docs&number=99", "builder=docs&number=x",
    "builder=docs&number=-99", "builder=docs&number=99999999999999999999",
    "builder=docs&revision=nope", "builder=%3Cscript%3E",
])
def test_unknown_badge_never_an_error(feed_client, query):  # noqa: F811
    assert get_png(feed_client, query) == badge_png("unknown", "normal")


def test_revision_picks_newest_build_of_it(feed_master, feed_client):  # noqa: F811
    with feed_master.db.write() as conn:
        ids = dict(conn.execute(
            sa.select(builds.c.number, builds.c.id).join(builders)
            .where(builders.c.name == "docs")).all())
        eb.set_properties(conn, ids[0], {"got_revision": ("abc123", "Git")})
        eb.set_properties(conn, ids[1], {"got_revision": ({"": "def456"}, "Git")})
    assert get_png(feed_client, "builder=docs&revision=abc123") == \
        badge_png("success", "normal")
    # revision overrides number; a per-codebase dict is read for the default codebase
    assert get_png(feed_client, "builder=docs&revision=def456&number=0") == \
        badge_png("failure", "normal")


@pytest.mark.parametrize("size,dims", [("small", (32, 14)), ("normal", (84, 18)),
                                       ("large", (120, 80)), ("huge", (84, 18))])
def test_sizes_and_pixels(feed_client, size, dims):  # noqa: F811
    images = {}
    for number, result in ((0, "success"), (1, "failure")):
        data = get_png(feed_client, f"builder=docs&number={number}&size={size}")
        width, height, rows = decode_png(data)
        assert (width, height) == dims
        pixels = {p for row in rows for p in row}
        assert rgb(COLOURS[result]) in pixels  # the result's colour
        assert rgb("#f9f9f9") in pixels  # the text
        assert rows[0][0][3] == 0 and rows[-1][-1][3] == 0  # rounded corners
        assert rows[height // 2][width // 2][3] == 255
        images[result] = rows
    assert images["success"] != images["failure"]


def test_cache_headers_and_etag(feed_client):  # noqa: F811
    resp = feed_client.get("/png?builder=docs&number=0&size=small")
    assert resp.headers["Cache-Control"] == "public, max-age=60"
    assert resp.headers["Content-Disposition"] == 'inline; filename="success_small.png"'
    etag = resp.headers["ETag"]
    again = feed_client.get("/png?builder=docs&number=0&size=small",
                            headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    other = feed_client.get("/png?builder=docs&number=1&size=small")
    assert other.headers["ETag"] != etag


@pytest.mark.parametrize("url,word,tooltip", [
    ("/png?builder=docs&format=svg", "failed", "docs #1: failure"),
    ("/badge.svg?builder=docs&number=0", "success", "docs #0: success"),
    ("/badge.svg?builder=runtests", "except", "runtests #1: exception"),
    ("/badge.svg?builder=%3C/title%3E%3Cscript%3E%26", "unknown",
     "</title><script>&: unknown"),
])
def test_svg_badge(feed_client, url, word, tooltip):  # noqa: F811
    resp = feed_client.get(url)
    assert resp.status_code == 200
    assert resp.content_type == "image/svg+xml; charset=utf-8"
    assert resp.headers["Cache-Control"] == "public, max-age=60" and resp.headers["ETag"]
    root = ET.fromstring(resp.data)  # well-formed
    assert root.tag == SVG_NS + "svg"
    texts = [t.text for t in root.iter(SVG_NS + "text")]
    assert texts == ["build", word]
    assert b"<script>" not in resp.data
    title = root.find(SVG_NS + "title")
    assert title is not None and title.text == tooltip


def test_a_failed_lookup_is_logged_and_not_cached(feed_master, feed_client, caplog):  # noqa: F811
    """The database failing (here: a table gone) is no "unknown" result: the error is
    logged with its traceback, and the "unknown" image (which a browser still draws)
    comes with 503 and no-store, so no cache keeps it after the site recovers."""
    with feed_master.db.write() as conn:
        conn.exec_driver_sql("ALTER TABLE builds RENAME TO builds_gone")
    for url, mimetype in (("/png?builder=docs&size=small", "image/png"),
                          ("/badge.svg?builder=docs", "image/svg+xml")):
        resp = feed_client.get(url)
        assert resp.status_code == 503, url
        assert resp.mimetype == mimetype
        assert resp.headers["Cache-Control"] == "no-store"
        assert "ETag" not in resp.headers and resp.headers["Retry-After"] == "60"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert decode_png(feed_client.get("/png?builder=docs&size=small").data)[:2] == (32, 14)
    assert "badge for builder 'docs': the build could not be looked up" in caplog.text
    assert "Traceback" in caplog.text and "builds" in caplog.text
    # an unknown builder is an ordinary answer: "unknown", cacheable
    with feed_master.db.write() as conn:
        conn.exec_driver_sql("ALTER TABLE builds_gone RENAME TO builds")
    resp = feed_client.get("/png?builder=nosuch")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "public, max-age=60"
