"""``/builders``, ``/builders/X``, ``/one_line_per_build[/X]``, ``/one_box_per_builder`` and
``/buildstatus``: what each builder is doing and what it did lately."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("builders", __name__)
