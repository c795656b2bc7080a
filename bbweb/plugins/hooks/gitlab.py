"""The ``gitlab`` dialect: GitLab push webhooks.

The raw JSON body of a ``Push Hook`` (or a ``System Hook`` push) gives one change per
commit on a ``refs/heads/`` ref, exactly like a GitHub push (0.8's mapping, with
``repository`` = ``repository.url``); tag pushes, branch deletions and other events give
none. With the ``secret`` option the ``X-Gitlab-Token`` header must equal it (constant-time
comparison), else 403. See docs/change_hooks.md.
"""

from __future__ import annotations

from typing import Any

from flask import Request

from bbweb.engine.changes import ChangeInput
from bbweb.mastercfg.master import MasterConfig
from bbweb.plugins.hooks import signatures as sig
from bbweb.plugins.hooks.github import (
    check_options,
    codebase_option,
    header_delivery_id,
    note,
    push_changes,
)

PUSH_EVENTS = ("push hook", "system hook")


class GitLabHook:
    """``/change_hook/gitlab``. Options: ``secret`` (the webhook's secret token),
    ``codebase`` (str, or a callable taking the payload; ``?codebase=`` wins)."""

    src = "git"
    OPTIONS = ("secret", "codebase")

    def __init__(self, options: dict[str, Any], config: MasterConfig) -> None:
        options = dict(options or {})
        check_options(options, self.OPTIONS, "gitlab")
        self.config = config
        self.secret = sig.secret_bytes(options.get("secret"), "secret")
        self.codebase = codebase_option(options.get("codebase"), "gitlab")

    def delivery_id(self, request: Request) -> str | None:
        # GitLab repeats a delivery's Idempotency-Key when it retries it.
        return header_delivery_id(request, "Idempotency-Key")

    def get_changes(self, request: Request) -> list[ChangeInput]:
        if self.secret is not None:
            token = request.headers.get("X-Gitlab-Token")
            if token is None:
                raise PermissionError("the request has no X-Gitlab-Token header")
            if not sig.same(token, self.secret):
                raise PermissionError("the X-Gitlab-Token does not match the secret")
        event = (request.headers.get("X-Gitlab-Event") or "").strip()
        if event and event.lower() not in PUSH_EVENTS:
            note(f"gitlab: {event[:64]!r} events are ignored")
            return []
        payload = sig.load_json(sig.raw_body(request))
        if not isinstance(payload, dict):
            raise ValueError("the payload must be a JSON object")
        kind = payload.get("object_kind", "push")
        if kind != "push":
            note(f"gitlab: {str(kind)[:64]!r} payloads are ignored")
            return []
        repo = sig.obj(payload, "repository", "repository")
        repository = sig.text(repo, "url", "repository.url")
        codebase = request.args.get("codebase")
        if codebase is None:
            if callable(self.codebase):
                codebase = self.codebase(payload)
                if codebase is not None and not isinstance(codebase, str):
                    raise ValueError("the codebase option returned a non-string")
            else:
                codebase = self.codebase
        return sig.checked(push_changes(
            payload, repository=repository, project=request.args.get("project") or "",
            codebase=codebase or "", src=self.src, dialect="gitlab"))
