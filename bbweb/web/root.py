"""``/`` (the welcome page) and ``/about``."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import version

import sqlalchemy as sa
from flask import Blueprint, Response

from bbweb import __version__
from bbweb.plugins.site import site
from bbweb.status.queries import database_version
from bbweb.web.rendering import render_page

bp = Blueprint("root", __name__)


@bp.route("/", methods=["GET", "HEAD", "POST"])
def welcome() -> Response:
    return render_page("root.html", "Buildbot")


@bp.route("/about", methods=["GET", "HEAD"])
def about() -> Response:
    with site().db.read() as conn:
        db = database_version(conn)
    versions = [
        ("bbweb", __version__),
        ("Python", sys.version.replace("\n", " ")),
        ("Flask", version("flask")),
        ("SQLAlchemy", sa.__version__),
        ("Jinja2", version("jinja2")),
        ("Database", db),
        ("Platform", platform.platform()),
    ]
    return render_page("about.html", "About this Buildbot", versions=versions)
