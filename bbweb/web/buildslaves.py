"""``/buildslaves`` and ``/buildslaves/X``: the workers, their health and their builds."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("buildslaves", __name__)
