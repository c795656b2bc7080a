"""``/health``: for load balancers and process supervisors (is the database reachable?)."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, jsonify

from bbweb import __version__
from bbweb.plugins.site import site

bp = Blueprint("health", __name__)
log = logging.getLogger("bbweb.health")


@bp.get("/health")
def health() -> Any:
    try:
        with site().db.read() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        log.error("health check: database unreachable: %s", exc)
        resp = jsonify({"status": "error", "database": "unreachable", "version": __version__})
        resp.status_code = 503
        return resp
    return jsonify({"status": "ok", "database": "ok", "version": __version__})
