"""``…/steps/S/logs/L`` (HTML) and ``…/logs/L/text`` (plain text): a step's log, streamed."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("logs", __name__)
