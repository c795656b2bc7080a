"""``/changes`` (the change sources) and ``/changes/N`` (one change)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("changes", __name__)
