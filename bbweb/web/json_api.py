"""``/json``: placeholder until the JSON API module lands."""

from flask import Blueprint

bp = Blueprint("json_api", __name__)
