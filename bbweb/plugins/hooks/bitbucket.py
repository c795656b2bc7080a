"""The ``bitbucket`` dialect: Bitbucket's POST service and Bitbucket Cloud webhooks.

* The POST service (0.8's format, git and hg): the ``payload`` form field; one change per
  commit, ``repository`` = ``canon_url`` + ``repository.absolute_url``, ``src`` = the
  repository's ``scm``.
* Bitbucket Cloud (``X-Event-Key: repo:push``, raw JSON): one change per commit of each
  branch update in ``push.changes``, oldest first; deleted branches (``new: null``) and
  tags give none. Other event keys are answered 200 and ignored.

With the ``secret`` option every request must carry ``X-Hub-Signature: sha256=<HMAC-SHA256
of the body>`` (Bitbucket Cloud's webhook secret), else 403. See docs/change_hooks.md.
"""

from __future__ import annotations

from typing import Any

from flask import Request

from bbweb.engine.changes import ChangeInput
from bbweb.mastercfg.master import MasterConfig
from bbweb.plugins.hooks import signatures as sig
from bbweb.plugins.hooks.github import check_options, header_delivery_id, note

BRANCH_TYPES = ("branch", "named_branch", "bookmark")


def _href(data: Any, *path: str) -> str | None:
    """``data.links.<name>.href`` style lookups; None when any step is missing."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data if isinstance(data, str) and data else None


class BitbucketHook:
    """``/change_hook/bitbucket``. Options: ``secret`` (the Bitbucket Cloud webhook
    secret)."""

    OPTIONS = ("secret",)

    def __init__(self, options: dict[str, Any], config: MasterConfig) -> None:
        options = dict(options or {})
        check_options(options, self.OPTIONS, "bitbucket")
        self.config = config
        self.secret = sig.secret_bytes(options.get("secret"), "secret")

    def delivery_id(self, request: Request) -> str | None:
        # X-Request-UUID names one delivery (X-Request-Id on Bitbucket Data Center).
        # X-Hook-UUID names the webhook itself, the same for all its deliveries, so it is
        # never used as a delivery id.
        return header_delivery_id(request, "X-Request-UUID", "X-Request-Id")

    def get_changes(self, request: Request) -> list[ChangeInput]:
        body = sig.raw_body(request)
        if self.secret is not None:
            sig.check_prefixed_signature(request.headers.get("X-Hub-Signature"),
                                         self.secret, body, "sha256", "X-Hub-Signature")
        event = (request.headers.get("X-Event-Key") or "").strip()
        if event and event != "repo:push":
            note(f"bitbucket: {event[:64]!r} events are ignored")
            return []
        payload = sig.payload_object(request, body)
        project = sig.query_arg(request, "project", body) or ""
        if event or "push" in payload:
            codebase = sig.query_arg(request, "codebase", body) or ""
            changes = self.cloud_changes(payload, project, codebase)
        else:
            changes = self.post_service_changes(payload, project)
        return sig.checked(changes)

    # -- the POST service (0.8) -------------------------------------------------------------

    @staticmethod
    def post_service_changes(payload: dict[str, Any], project: str) -> list[ChangeInput]:
        canon = sig.text(payload, "canon_url", "canon_url")
        repo = sig.obj(payload, "repository", "repository")
        repository = canon + sig.text(repo, "absolute_url", "repository.absolute_url")
        scm = sig.text(repo, "scm", "repository.scm", required=False) or None
        changes = []
        for i, commit in enumerate(sig.seq(payload, "commits", "commits list")):
            where = f"commits[{i}]"
            if not isinstance(commit, dict):
                raise ValueError(f"{where} must be a JSON object")
            files = []
            for j, f in enumerate(sig.seq(commit, "files", f"{where}.files", required=False)):
                name = sig.text(f, "file", f"{where}.files[{j}].file") \
                    if isinstance(f, dict) else None
                if name is None:
                    raise ValueError(f"{where}.files[{j}] must be an object with a 'file'")
                files.append(name)
            revision = sig.text(commit, "raw_node", f"{where}.raw_node", allow_empty=False)
            author = (sig.text(commit, "raw_author", f"{where}.raw_author", required=False)
                      or sig.text(commit, "author", f"{where}.author"))
            changes.append(ChangeInput(
                author=author,
                comments=sig.text(commit, "message", f"{where}.message", required=False) or "",
                files=files,
                revision=revision,
                when=sig.iso_timestamp(commit.get("utctimestamp"), f"{where}.utctimestamp"),
                branch=sig.text(commit, "branch", f"{where}.branch", required=False) or None,
                revlink=repository.rstrip("/") + "/commits/" + revision,
                repository=repository, project=project, src=scm,
            ))
        if not changes:
            note("bitbucket: the POST has no commits")
        return changes

    # -- Bitbucket Cloud repo:push ----------------------------------------------------------

    @staticmethod
    def cloud_changes(payload: dict[str, Any], project: str, codebase: str
                      ) -> list[ChangeInput]:
        push = sig.obj(payload, "push", "push")
        repo = sig.obj(payload, "repository", "repository")
        repository = _href(repo, "links", "html", "href") or sig.text(
            repo, "full_name", "repository.full_name", required=False) or ""
        scm = sig.text(repo, "scm", "repository.scm", required=False) or None
        changes = []
        for i, update in enumerate(sig.seq(push, "changes", "push.changes")):
            where = f"push.changes[{i}]"
            if not isinstance(update, dict):
                raise ValueError(f"{where} must be a JSON object")
            new = sig.obj(update, "new", f"{where}.new", required=False)
            if new is None:  # the branch or tag was deleted
                continue
            kind = sig.text(new, "type", f"{where}.new.type")
            if kind not in BRANCH_TYPES:  # tags
                continue
            branch = sig.text(new, "name", f"{where}.new.name", allow_empty=False)
            commits = sig.seq(update, "commits", f"{where}.commits", required=False)
            # Bitbucket lists the most recent commit first.
            for j in reversed(range(len(commits))):
                commit = commits[j]
                cwhere = f"{where}.commits[{j}]"
                if not isinstance(commit, dict):
                    raise ValueError(f"{cwhere} must be a JSON object")
                author_obj = sig.obj(commit, "author", f"{cwhere}.author")
                author = (sig.text(author_obj, "raw", f"{cwhere}.author.raw", required=False)
                          or _href(author_obj, "user", "display_name"))
                if not author:
                    raise ValueError(f"{cwhere}.author has no name")
                changes.append(ChangeInput(
                    author=author,
                    comments=sig.text(commit, "message", f"{cwhere}.message",
                                      required=False) or "",
                    revision=sig.text(commit, "hash", f"{cwhere}.hash", allow_empty=False),
                    when=sig.iso_timestamp(commit.get("date"), f"{cwhere}.date"),
                    branch=branch,
                    revlink=_href(commit, "links", "html", "href"),
                    repository=repository, project=project, codebase=codebase, src=scm,
                ))
        if not changes:
            note("bitbucket: the push has no new branch commits")
        return changes
