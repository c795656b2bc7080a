"""The ``googlecode`` dialect: Google Code Project Hosting post-commit web hooks.

The raw JSON body gives one change per element of ``revisions``. With the ``secret_key``
option (the project's "Post-Commit Authentication Key") the
``Google-Code-Project-Hosting-Hook-Hmac`` header must be the hex HMAC-MD5 of the exact
body keyed with it (constant-time comparison), else 403. Google Code sent no branch, so
every change gets the ``branch`` option (default ``'default'``) unless a revision names its
own. See docs/change_hooks.md.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Request

from bbweb.engine.changes import ChangeInput
from bbweb.mastercfg.master import MasterConfig
from bbweb.plugins.hooks import signatures as sig
from bbweb.plugins.hooks.github import check_options, note

log = logging.getLogger("bbweb.change_hook.googlecode")
HMAC_HEADER = "Google-Code-Project-Hosting-Hook-Hmac"


class GoogleCodeHook:
    """``/change_hook/googlecode``. Options: ``secret_key``, ``branch``."""

    src = "Google Code"
    OPTIONS = ("secret_key", "branch")

    def __init__(self, options: dict[str, Any], config: MasterConfig) -> None:
        options = dict(options or {})
        check_options(options, self.OPTIONS, "googlecode")
        self.config = config
        self.secret = sig.secret_bytes(options.get("secret_key"), "secret_key")
        branch = options.get("branch", "default")
        if not isinstance(branch, str):
            raise TypeError("the googlecode 'branch' option must be a string")
        self.branch = branch
        if self.secret is None:
            log.warning("the googlecode change hook has no secret_key: anyone who can reach "
                        "/change_hook/googlecode can add changes")

    def get_changes(self, request: Request) -> list[ChangeInput]:
        body = sig.raw_body(request)
        if self.secret is not None:
            given = request.headers.get(HMAC_HEADER)
            if given is None:
                raise PermissionError(f"the request has no {HMAC_HEADER} header")
            if not sig.same(given.strip().lower(), sig.hmac_hex(self.secret, body, "md5")):
                raise PermissionError(f"the {HMAC_HEADER} does not match the body")
        payload = sig.load_json(body)
        if not isinstance(payload, dict):
            raise ValueError("the payload must be a JSON object")
        project = sig.text(payload, "project_name", "project_name", required=False) or ""
        repository = sig.text(payload, "repository_path", "repository_path",
                              required=False) or ""
        changes = []
        for i, rev in enumerate(sig.seq(payload, "revisions", "revisions list")):
            where = f"revisions[{i}]"
            if not isinstance(rev, dict):
                raise ValueError(f"{where} must be a JSON object")
            # 0.8 took the set union (order undefined); this keeps first-seen order.
            files = list(dict.fromkeys(
                name for key in ("added", "modified", "removed")
                for name in sig.str_list(rev, key, f"{where}.{key}")))
            revision = rev.get("revision")
            if isinstance(revision, int) and not isinstance(revision, bool):
                revision = str(revision)  # Subversion revision numbers
            elif not isinstance(revision, str) or not revision:
                raise ValueError(f"{where}.revision must be a non-empty string")
            changes.append(ChangeInput(
                author=sig.text(rev, "author", f"{where}.author", allow_empty=False),
                comments=sig.text(rev, "message", f"{where}.message", required=False) or "",
                files=files,
                revision=revision,
                when=sig.epoch_timestamp(rev.get("timestamp"), f"{where}.timestamp"),
                branch=sig.text(rev, "branch", f"{where}.branch", required=False)
                or self.branch,
                revlink=sig.text(rev, "url", f"{where}.url", required=False) or None,
                repository=repository, project=project, src=self.src,
            ))
        if not changes:
            note("googlecode: the post has no revisions")
        return sig.checked(changes)
