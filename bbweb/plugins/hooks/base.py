"""The ``base`` dialect: one change from plain form fields (what ``bbweb sendchange`` and
Buildbot's ``post_build_request.py`` send). ``files`` and ``properties`` are JSON strings.
A JSON request body with the same field names is accepted too."""

from __future__ import annotations

import json
from typing import Any

from flask import Request

from bbweb.engine.changes import ChangeInput
from bbweb.mastercfg.master import MasterConfig
from bbweb.values.validation import ValueRefused, loads

TEXT_FIELDS = ("comments", "revision", "branch", "category", "revlink", "repository",
               "project", "codebase")


def _json_field(raw: Any, name: str, kind: type, default: Any) -> Any:
    if raw is None or raw == "":
        return default
    if isinstance(raw, str):
        try:
            raw = loads(raw, repr(name))
        except json.JSONDecodeError as exc:
            raise ValueError(f"'{name}' is not valid JSON: {exc.msg} at position {exc.pos}")
    if not isinstance(raw, kind):
        raise ValueError(f"'{name}' must be a JSON {'list' if kind is list else 'object'}")
    return raw


class BaseHook:
    """Change hook dialect plugin interface: ``__init__(options, config)`` and
    ``get_changes(request) -> list[ChangeInput]``; raise ValueError for a 400 (malformed
    request) and PermissionError for a 403 (a signature or token that does not verify)."""

    src: str | None = None

    def __init__(self, options: dict[str, Any], config: MasterConfig) -> None:
        self.options = options
        self.config = config

    def get_changes(self, request: Request) -> list[ChangeInput]:
        if request.is_json:
            try:
                data = loads(request.get_data(cache=True), "the request body")
            except ValueRefused:
                raise
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise ValueError("the request body is not a JSON object")
        else:
            data = {k: request.values.get(k) for k in request.values}
        author = data.get("author") or data.get("who")
        if not author:
            raise ValueError("a change needs an author: give the 'author' (or 'who') field")
        files = _json_field(data.get("files"), "files", list, [])
        if not all(isinstance(f, str) for f in files):
            raise ValueError("'files' must be a JSON list of file names")
        properties = _json_field(data.get("properties"), "properties", dict, {})
        when = data.get("when")
        if when not in (None, ""):
            try:
                when = float(when)
            except (TypeError, ValueError):
                raise ValueError("'when' must be a number of seconds since the epoch")
        else:
            when = None
        isdir = str(data.get("isdir") or "").lower() in ("1", "true", "yes")
        fields = {k: data.get(k) for k in TEXT_FIELDS}
        for k, v in fields.items():
            if v is not None and not isinstance(v, str):
                raise ValueError(f"'{k}' must be a string")
        return [ChangeInput(
            author=str(author), files=files, properties=properties, when=when, is_dir=isdir,
            comments=fields["comments"] or "", revision=fields["revision"] or None,
            branch=fields["branch"] or None, category=fields["category"] or None,
            revlink=fields["revlink"] or None, repository=fields["repository"] or "",
            project=fields["project"] or "", codebase=fields["codebase"] or "",
            src=data.get("src") if isinstance(data.get("src"), str) else self.src,
        )]
