"""Files from ``public_html`` (``WebStatus(public_html=…)``, relative to the basedir), with
bbweb's own stylesheet, favicon and robots.txt behind them for anything the directory does
not provide. Dynamic pages always win over a file of the same name.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Blueprint, Response, abort, send_from_directory
from werkzeug.security import safe_join

from bbweb.plugins.site import site
from bbweb.web.rendering import render_page

bp = Blueprint("static_files", __name__)

BUILTIN = Path(__file__).resolve().parent.parent / "static"
SEEDED = ("default.css", "favicon.ico", "robots.txt")


def public_html_dir() -> str:
    s = site()
    return os.path.join(s.basedir, s.config.web.public_html)


def seed_public_html(basedir: Path, public_html: str = "public_html") -> list[Path]:
    """Give a new master a ``public_html`` with copies of the built-in files, ready to be
    edited. Existing files are left alone."""
    target = basedir / public_html
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SEEDED:
        path = target / name
        if not path.exists():
            path.write_bytes((BUILTIN / name).read_bytes())
            written.append(path)
    return written


@bp.route("/<path:filename>", methods=["GET", "HEAD"])
def public_file(filename: str) -> Response:
    root = public_html_dir()
    path = safe_join(root, filename)
    if path is not None and os.path.isdir(path):
        return _listing(filename, path)
    if path is not None and os.path.isfile(path):
        return send_from_directory(root, filename, max_age=300)
    if filename in SEEDED:
        return send_from_directory(BUILTIN, filename, max_age=300)
    abort(404, f"No such page: /{filename}")


def _listing(filename: str, path: str) -> Response:
    entries = []
    for entry in sorted(os.scandir(path), key=lambda e: (not e.is_dir(), e.name)):
        if entry.name.startswith("."):
            continue
        entries.append({"name": entry.name + ("/" if entry.is_dir() else ""),
                        "is_dir": entry.is_dir(),
                        "size": None if entry.is_dir() else entry.stat().st_size})
    # links must be relative to the directory itself, which needs the trailing slash
    prefix = "" if filename.endswith("/") else filename.rstrip("/").rsplit("/", 1)[-1] + "/"
    return render_page("directory.html", f"Directory listing for /{filename}",
                       path="/" + filename, entries=entries, prefix=prefix)
