"""A bbweb change-hook dialect for *Example Forge*, an imaginary code forge.

Example Forge sends one POST per push to the URL its users configure, here
``https://ci.example.org/change_hook/example``, with these headers:

* ``X-Forge-Event``: ``push`` or ``ping`` (sent when the hook is set up);
* ``X-Forge-Delivery``: a unique id per delivery, repeated when the forge retries it;
* ``X-Forge-Signature``: ``sha256=<hex HMAC-SHA256 of the body>`` keyed with the hook's
  secret, when one is set;

and a JSON body::

    {"ref": "refs/heads/main",
     "deleted": false,
     "pusher": "alice",
     "repository": {"name": "widget",
                    "clone_url": "https://forge.example/acme/widget.git",
                    "web_url": "https://forge.example/acme/widget"},
     "commits": [{"sha": "9fceb02…",
                  "author": {"name": "Alice", "email": "alice@example.org"},
                  "message": "Fix the frobnicator",
                  "timestamp": 1700000000,
                  "files": {"added": ["a.c"], "modified": ["b.c"], "removed": []}}]}

Each commit pushed to a branch becomes one change. Tag pushes and branch deletions
give none. Options (``change_hook_dialects={'example': {...}}`` or
``[change_hooks] example = {...}`` in plugins.toml):

* ``secret``: when set, every request must be signed with it (403 otherwise);
* ``project``: the changes' project (default: the repository's name).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from flask import Request

from bbweb.engine.changes import ChangeInput

__all__ = ["ExampleForgeHook"]

BRANCH_PREFIX = "refs/heads/"
DELIVERY_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class ExampleForgeHook:
    """The dialect: ``__init__(options, config)``, ``get_changes(request)`` and
    ``delivery_id(request)`` (docs/plugins.md in bbweb)."""

    src = "git"
    # GET requests are refused with 405 by bbweb unless a dialect sets allow_get = True;
    # Example Forge only ever POSTs, so this dialect leaves it off.
    allow_get = False

    def __init__(self, options: dict[str, Any], config: Any) -> None:
        secret = options.get("secret")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise ValueError("the example dialect's 'secret' option must be a non-empty "
                             "string")
        project = options.get("project")
        if project is not None and not isinstance(project, str):
            raise ValueError("the example dialect's 'project' option must be a string")
        self.secret = secret.encode("utf-8") if secret else None
        self.project = project

    # -- the dialect interface ----------------------------------------------------------------

    def delivery_id(self, request: Request) -> str | None:
        """The forge's delivery id, so that bbweb stores a retried delivery only once."""
        value = (request.headers.get("X-Forge-Delivery") or "").strip()
        return value if DELIVERY_ID.match(value) else None

    def get_changes(self, request: Request) -> list[ChangeInput]:
        body = request.get_data(cache=True)
        self.verify(request, body)
        event = (request.headers.get("X-Forge-Event") or "").strip().lower()
        if event == "ping":
            return []
        if event != "push":
            raise ValueError("X-Forge-Event must be 'push' or 'ping'")
        payload = self.load(body)
        ref = self.text(payload, "ref")
        if payload.get("deleted") is True or not ref.startswith(BRANCH_PREFIX):
            return []  # a branch deletion or a tag: nothing to build
        branch = ref[len(BRANCH_PREFIX):]
        repo = payload.get("repository")
        if not isinstance(repo, dict):
            raise ValueError("the payload has no repository object")
        repository = self.text(repo, "clone_url")
        web_url = repo.get("web_url") if isinstance(repo.get("web_url"), str) else None
        project = self.project if self.project is not None else self.text(repo, "name")
        commits = payload.get("commits")
        if not isinstance(commits, list):
            raise ValueError("the payload has no commits list")
        pusher = payload.get("pusher") if isinstance(payload.get("pusher"), str) else None
        return [self.change(c, branch, repository, web_url, project, pusher)
                for c in commits]

    # -- details ------------------------------------------------------------------------------

    def verify(self, request: Request, body: bytes) -> None:
        if self.secret is None:
            return
        header = (request.headers.get("X-Forge-Signature") or "").strip()
        algorithm, _, signature = header.partition("=")
        if algorithm != "sha256" or not signature:
            raise PermissionError("the request is not signed (X-Forge-Signature: "
                                  "sha256=<hex>)")
        expected = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.lower().encode(), expected.encode()):
            raise PermissionError("the X-Forge-Signature does not match the body")

    @staticmethod
    def load(body: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # never echo the body back
            raise ValueError("the body is not valid JSON") from None
        if not isinstance(payload, dict):
            raise ValueError("the body must be a JSON object")
        return payload

    @staticmethod
    def text(data: dict[str, Any], key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise ValueError(f"the payload has no {key!r} string")
        return value

    def change(self, commit: Any, branch: str, repository: str, web_url: str | None,
               project: str, pusher: str | None) -> ChangeInput:
        if not isinstance(commit, dict):
            raise ValueError("each commit must be a JSON object")
        sha = self.text(commit, "sha")
        author = commit.get("author")
        if not isinstance(author, dict) or not isinstance(author.get("name"), str):
            raise ValueError("each commit needs an author with a name")
        who = author["name"]
        if isinstance(author.get("email"), str) and author["email"]:
            who = f"{who} <{author['email']}>"
        when = commit.get("timestamp")
        if when is not None and (isinstance(when, bool) or not isinstance(when, int | float)):
            raise ValueError("a commit's timestamp must be seconds since the epoch")
        files: list[str] = []
        groups = commit.get("files") or {}
        if not isinstance(groups, dict):
            raise ValueError("a commit's files must be an object of lists")
        for kind in ("added", "modified", "removed"):
            names = groups.get(kind) or []
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ValueError(f"a commit's files.{kind} must be a list of names")
            files.extend(names)
        message = commit.get("message")
        return ChangeInput(
            author=who, comments=message if isinstance(message, str) else "",
            files=files, revision=sha, when=float(when) if when is not None else None,
            branch=branch, repository=repository, project=project, src=self.src,
            revlink=f"{web_url}/commit/{sha}" if web_url else None,
            # the one property this dialect sets; it is documented in the README
            properties={"forge_pusher": pusher} if pusher else {},
        )
