"""A bbweb pages plugin: ``/hello/`` lists the master's builders inside the site layout.

bbweb calls :func:`make_blueprint` once per web process with the plugin's options from
plugins.toml and the loaded master configuration, and mounts the blueprint at
``/hello`` (the entry point's name), since the blueprint sets no ``url_prefix``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from bbweb.plugins.site import site
from bbweb.web.rendering import render_page


def make_blueprint(options: dict[str, Any], config: Any) -> Blueprint:
    """``[pages] hello = {greeting = "Hi"}`` in plugins.toml; ``greeting`` is optional."""
    greeting = options.get("greeting", "Hello")
    if not isinstance(greeting, str) or not greeting:
        # raised here, the error is reported by `bbweb checkconfig` and in the log
        raise ValueError("the 'greeting' option must be a non-empty string")
    unknown = set(options) - {"greeting"}
    if unknown:
        raise ValueError(f"unknown option(s): {', '.join(sorted(unknown))}")

    # the blueprint's name must be unique on the site; its templates live in a folder
    # named after the plugin so they cannot shadow bbweb's own
    bp = Blueprint("hello", __name__, template_folder="templates")

    @bp.route("/")
    def index() -> Response:
        cfg = site().config  # read per request, like bbweb's own pages
        builders = sorted(cfg.builders.values(), key=lambda b: b.name)
        return render_page("hello/index.html", f"{greeting} from {cfg.title}",
                           greeting=greeting, builders=builders)

    return bp
