"""The ``github`` dialect: GitHub webhooks (push, pull_request, ping).

A push to ``refs/heads/BRANCH`` gives one change per commit in the payload (``distinct:
false`` commits skipped); tag pushes, other refs and branch deletions give none. A
``pull_request`` event (opened, synchronize, reopened) gives one change on the pull
request's head. ``ping`` and every other event are answered 200 and logged. The payload is
the raw JSON body or the ``payload`` field of a url-encoded form, as GitHub sends for
either content type setting. With the ``secret`` option every request must carry a valid
``X-Hub-Signature-256`` (HMAC-SHA256 of the body), or failing that ``X-Hub-Signature``
(HMAC-SHA1); anything else is refused with 403. See docs/change_hooks.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from flask import Request, g

from bbweb.engine.changes import ChangeInput
from bbweb.mastercfg.master import MasterConfig
from bbweb.plugins.hooks import signatures as sig
from bbweb.plugins.loading import FRAMEWORK_OPTIONS

log = logging.getLogger("bbweb.change_hook.github")

PR_ACTIONS = ("opened", "synchronize", "reopened")
PR_CATEGORY = "pull_request"
BRANCH_PREFIX = "refs/heads/"
# What a delivery id may look like (GitHub's are UUIDs); anything else is not used.
DELIVERY_ID = re.compile(r"^[A-Za-z0-9{}._:-]{1,128}$")


def header_delivery_id(request: Request, *names: str) -> str | None:
    """The first of ``names`` that is present and looks like an id."""
    for name in names:
        value = (request.headers.get(name) or "").strip()
        if value:
            return value if DELIVERY_ID.match(value) else None
    return None


def note(message: str) -> None:
    """Why a request produced no change (the framework may show it; always logged)."""
    g.change_hook_note = message
    log.info("%s", message)


def framework_options() -> tuple[str, ...]:
    """Options the change-hook framework reads itself (size limit, property policy)."""
    return FRAMEWORK_OPTIONS


def check_options(options: dict[str, Any], known: tuple[str, ...], dialect: str) -> None:
    """A misspelt option is a configuration error (``bbweb checkconfig`` names it)."""
    unknown = sorted(set(options) - set(known) - set(framework_options()))
    if unknown:
        raise ValueError(f"unknown {dialect} change hook option(s): {', '.join(unknown)} "
                         f"(known: {', '.join(known)})")


def codebase_option(value: Any, dialect: str) -> str | Callable[[dict[str, Any]], Any] | None:
    if value is None or isinstance(value, str):
        return value
    if callable(value):
        codebase: Callable[[dict[str, Any]], Any] = value
        return codebase
    raise TypeError(f"the {dialect} 'codebase' option must be a string or a callable")


def commit_author(commit: dict[str, Any], where: str) -> str:
    """``Name <email>`` from a commit's ``author`` object."""
    author = sig.obj(commit, "author", f"{where}.author")
    name = sig.text(author, "name", f"{where}.author.name", required=False)
    email = sig.text(author, "email", f"{where}.author.email", required=False)
    if not name:
        name = sig.text(author, "username", f"{where}.author.username", required=False)
    if not name and not email:
        raise ValueError(f"{where}.author has no name")
    if not name:
        return f"<{email}>"
    return f"{name} <{email}>" if email else name


def push_changes(payload: dict[str, Any], *, repository: str, project: str, codebase: str,
                 src: str, dialect: str) -> list[ChangeInput]:
    """The changes of a git push payload (GitHub and GitLab share the shape): one per
    commit on a ``refs/heads/`` ref, none for tags, other refs and deletions."""
    ref = sig.text(payload, "ref", "ref")
    if not ref.startswith(BRANCH_PREFIX) or len(ref) == len(BRANCH_PREFIX):
        note(f"{dialect}: push to {ref[:200]!r} ignored: not a branch")
        return []
    branch = ref[len(BRANCH_PREFIX):]
    after = sig.text(payload, "after", "after", required=False)
    if payload.get("deleted") is True or sig.is_zero_sha(after):
        note(f"{dialect}: deletion of branch {branch[:200]!r}: no change")
        return []
    commits = sig.seq(payload, "commits", "commits list")
    changes = []
    for i, commit in enumerate(commits):
        where = f"commits[{i}]"
        if not isinstance(commit, dict):
            raise ValueError(f"{where} must be a JSON object")
        distinct = commit.get("distinct")
        if distinct is not None and not isinstance(distinct, bool):
            raise ValueError(f"{where}.distinct must be true or false")
        if distinct is False:
            continue
        files = (sig.str_list(commit, "added", f"{where}.added")
                 + sig.str_list(commit, "modified", f"{where}.modified")
                 + sig.str_list(commit, "removed", f"{where}.removed"))
        changes.append(ChangeInput(
            author=commit_author(commit, where),
            comments=sig.text(commit, "message", f"{where}.message", required=False) or "",
            files=files,
            revision=sig.text(commit, "id", f"{where}.id", allow_empty=False),
            when=sig.iso_timestamp(commit.get("timestamp"), f"{where}.timestamp"),
            branch=branch,
            revlink=sig.text(commit, "url", f"{where}.url", required=False) or None,
            repository=repository, project=project, codebase=codebase, src=src,
        ))
    if not changes:
        note(f"{dialect}: push to {branch[:200]!r} has no new commits")
    return changes


class GitHubHook:
    """``/change_hook/github``. Options: ``secret`` (str), ``codebase`` (str, or a callable
    taking the payload dict; ``?codebase=`` wins), ``strict`` (accepted for 0.8.12
    configurations; bbweb always refuses unsigned requests when a secret is set)."""

    src = "git"
    OPTIONS = ("secret", "strict", "codebase")

    def __init__(self, options: dict[str, Any], config: MasterConfig) -> None:
        options = dict(options or {})
        check_options(options, self.OPTIONS, "github")
        self.config = config
        self.secret = sig.secret_bytes(options.get("secret"), "secret")
        self.codebase = codebase_option(options.get("codebase"), "github")

    # -- the dialect interface --------------------------------------------------------------

    def delivery_id(self, request: Request) -> str | None:
        return header_delivery_id(request, "X-GitHub-Delivery")

    def get_changes(self, request: Request) -> list[ChangeInput]:
        body = sig.raw_body(request)
        self.verify(request, body)
        event = (request.headers.get("X-GitHub-Event") or "push").strip().lower()
        if event == "ping":
            note(f"github: ping received (delivery {self.delivery_id(request)}); "
                 "the hook is set up")
            return []
        if event not in ("push", "pull_request"):
            note(f"github: {event[:64]!r} events are ignored")
            return []
        payload = sig.payload_object(request, body)
        project = sig.query_arg(request, "project", body) or ""
        codebase = self.codebase_for(request, body, payload)
        if event == "push":
            changes = push_changes(payload, repository=self.push_repository(payload),
                                   project=project, codebase=codebase, src=self.src,
                                   dialect="github")
        else:
            changes = self.pull_request_changes(payload, project, codebase)
        return sig.checked(changes)

    # -- details ----------------------------------------------------------------------------

    def verify(self, request: Request, body: bytes) -> None:
        """With a secret: SHA-256 signature if sent, else SHA-1; PermissionError if neither
        verifies. Without one: nothing to check."""
        if self.secret is None:
            return
        sha256 = request.headers.get("X-Hub-Signature-256")
        if sha256 is not None:
            sig.check_prefixed_signature(sha256, self.secret, body, "sha256",
                                         "X-Hub-Signature-256")
            return
        sha1 = request.headers.get("X-Hub-Signature")
        if sha1 is None:
            raise PermissionError("the request is not signed (no X-Hub-Signature-256 or "
                                  "X-Hub-Signature header)")
        sig.check_prefixed_signature(sha1, self.secret, body, "sha1", "X-Hub-Signature")

    def codebase_for(self, request: Request, body: bytes, payload: dict[str, Any]) -> str:
        given = sig.query_arg(request, "codebase", body)
        if given is not None:
            return given
        if callable(self.codebase):
            value = self.codebase(payload)
            if value is not None and not isinstance(value, str):
                raise ValueError("the codebase option returned a non-string")
            return value or ""
        return self.codebase or ""

    @staticmethod
    def push_repository(payload: dict[str, Any]) -> str:
        """``repository.url`` as 0.8 used it (the https://github.com/OWNER/REPO page in
        push payloads); ``html_url`` where a payload lacks it."""
        repo = sig.obj(payload, "repository", "repository")
        for key in ("url", "html_url", "clone_url"):
            value = sig.text(repo, key, f"repository.{key}", required=False)
            if value:
                return value
        raise ValueError("the payload has no repository.url")

    def pull_request_changes(self, payload: dict[str, Any], project: str, codebase: str
                             ) -> list[ChangeInput]:
        action = sig.text(payload, "action", "action")
        if action not in PR_ACTIONS:
            note(f"github: pull_request action {action[:64]!r} ignored")
            return []
        pr = sig.obj(payload, "pull_request", "pull_request")
        number = payload.get("number", pr.get("number"))
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValueError("the pull request number must be an integer")
        head = sig.obj(pr, "head", "pull_request.head")
        sha = sig.text(head, "sha", "pull_request.head.sha", allow_empty=False)
        ref = sig.text(head, "ref", "pull_request.head.ref", allow_empty=False)
        base = sig.obj(pr, "base", "pull_request.base", required=False)
        base_ref = sig.text(base, "ref", "pull_request.base.ref", required=False) \
            if base is not None else None
        user = sig.obj(pr, "user", "pull_request.user")
        login = sig.text(user, "login", "pull_request.user.login", allow_empty=False)
        title = sig.text(pr, "title", "pull_request.title", required=False) or ""
        body = sig.text(pr, "body", "pull_request.body", required=False) or ""
        # The head repository holds the head ref and sha (it is a fork for outside
        # contributions; GitHub sends null when the fork was deleted).
        head_repo = sig.obj(head, "repo", "pull_request.head.repo", required=False)
        repository = None
        for repo in (head_repo, sig.obj(payload, "repository", "repository", required=False)):
            if repo is not None:
                repository = (sig.text(repo, "html_url", "repository.html_url",
                                       required=False)
                              or sig.text(repo, "clone_url", "repository.clone_url",
                                          required=False))
                if repository:
                    break
        properties: dict[str, Any] = {"github.pr_number": number}
        if base_ref:
            properties["github.base_ref"] = base_ref
        return [ChangeInput(
            author=login,
            comments=f"{title}\n\n{body}" if body else title,
            revision=sha,
            branch=ref,
            when=sig.iso_timestamp(pr.get("updated_at"), "pull_request.updated_at"),
            category=PR_CATEGORY,
            revlink=sig.text(pr, "html_url", "pull_request.html_url", required=False) or None,
            properties=properties,
            repository=repository or "", project=project, codebase=codebase, src=self.src,
        )]
