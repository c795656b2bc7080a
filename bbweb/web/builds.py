"""``/builders/X/builds/N`` and ``…/steps/S``: one build, one step."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("builds", __name__)
