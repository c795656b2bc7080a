"""``GitHubStatus``: a commit status on GitHub (or GitHub Enterprise) for each build.

When a build starts the commit gets ``pending``; when it finishes, the result's state.
Owner, repository and commit are rendered from the build (``Interpolate``), as in 0.8.
Unlike 0.8 the request is retried when GitHub is down or rate-limits us (after the
limit's reset, never sooner), a ``context`` is always sent so several builders do not
overwrite one status, and TLS certificates are verified. The token is sent only in the
``Authorization`` header and never logged or shown.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from bbweb.mastercfg.errors import caller_location, config_error
from bbweb.mastercfg.properties import Interpolate, Renderable
from bbweb.plugins.notifiers.base import Notification, Notifier
from bbweb.plugins.notifiers.outgoing_http import HttpClient, check_http_url
from bbweb.status.objects import BuildStatus
from bbweb.values.results import CANCELLED, EXCEPTION, FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS

log = logging.getLogger("bbweb.notifiers.github")

DEFAULT_BASE_URL = "https://api.github.com"
ACCEPT = "application/vnd.github+json"
DESCRIPTION_LIMIT = 140  # GitHub refuses longer descriptions
CONTEXT_PREFIX = "bbweb/"

STATES: dict[int | None, str] = {
    SUCCESS: "success",
    # 0.8 sent "error" for WARNINGS: the build ran and found problems, which is GitHub's
    # "failure"; "error" means the check itself could not run
    WARNINGS: "failure",
    FAILURE: "failure",
    EXCEPTION: "error",
    SKIPPED: "error",
    RETRY: "error",
    CANCELLED: "error",
}


def finished_state(results: int | None) -> str:
    """The GitHub state of a finished build's result."""
    return STATES.get(results, "error")


def _text_or_renderable(value: Any, option: str) -> Any:
    if isinstance(value, str | Renderable):
        return value
    config_error(f"GitHubStatus: {option} must be a string or a renderable such as "
                 f"Interpolate(...), not {type(value).__name__}")


class GitHubStatus(Notifier):
    """Commit statuses through ``POST /repos/{owner}/{repo}/statuses/{sha}``."""

    plugin_name = "github"
    event_kinds = frozenset({"build.started", "build.finished"})

    def __init__(self, token: Any = None, repoOwner: Any = None, repoName: Any = None,
                 sha: Any = None, startDescription: Any = "Build started.",
                 endDescription: Any = "Build done.", baseURL: Any = None, *,
                 context: Any = None, builders: Sequence[str] | None = None,
                 name: str | None = None, timeout: float = 30.0, **unknown: Any) -> None:
        if unknown:
            config_error(f"GitHubStatus: unknown argument(s) {', '.join(sorted(unknown))}")
        super().__init__(name)
        self.location = caller_location()
        if not isinstance(token, str) or not token.strip():
            config_error("GitHubStatus: token (a GitHub API token) is required")
        if token != token.strip() or any(c in token for c in "\r\n"):
            config_error("GitHubStatus: token must not contain spaces or line breaks")
        self._token: str = token
        for option, value in (("repoOwner", repoOwner), ("repoName", repoName)):
            if value is None or value == "":
                config_error(f"GitHubStatus: {option} is required")
        self.repoOwner = _text_or_renderable(repoOwner, "repoOwner")
        self.repoName = _text_or_renderable(repoName, "repoName")
        self.sha = _text_or_renderable(Interpolate("%(src::revision)s") if sha is None
                                       else sha, "sha")
        self.startDescription = _text_or_renderable(startDescription, "startDescription")
        self.endDescription = _text_or_renderable(endDescription, "endDescription")
        self.context = None if context is None else _text_or_renderable(context, "context")
        base = DEFAULT_BASE_URL if baseURL is None else baseURL
        problem = check_http_url(base)
        if problem:
            config_error(f"GitHubStatus: baseURL {problem} (GitHub Enterprise: "
                         "'https://<host>/api/v3')")
        self.baseURL: str = str(base).rstrip("/")
        if builders is not None and (isinstance(builders, str) or not all(
                isinstance(b, str) for b in builders)):
            config_error("GitHubStatus: builders must be a list of builder names")
        self.builders = None if builders is None else list(builders)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            config_error("GitHubStatus: timeout must be a positive number of seconds")
        self.http = HttpClient(read_timeout=float(timeout))

    def __repr__(self) -> str:  # never the token
        return f"<GitHubStatus {self.name!r} at {self.baseURL}>"

    def close(self) -> None:
        self.http.close()

    # -- deciding ------------------------------------------------------------------------

    def notifications_for(self, event: dict[str, Any]) -> list[Notification]:
        payload = event["payload"]
        if self.builders is not None and payload.get("builder") not in self.builders:
            return []
        build = self.master_status.getBuildById(int(payload["buildid"]))
        if build is None:
            return []
        started = event["kind"] == "build.started"
        state = "pending" if started else finished_state(payload.get("results"))
        what = f"{build.builder.name} #{build.number} ({state})"
        key = f"github-{state}"
        owner, repo, sha = (self._text(build, v)
                            for v in (self.repoOwner, self.repoName, self.sha))
        if not owner or not repo:
            return [Notification(key=key, what=what, builder=build.builder.name,
                                 build_number=build.number,
                                 skip_reason="no repository owner or name for this build")]
        if not sha:
            return [Notification(key=key, what=what, builder=build.builder.name,
                                 build_number=build.number,
                                 skip_reason="No revision found.")]
        description = self._text(build, self.startDescription if started
                                 else self.endDescription)
        if len(description) > DESCRIPTION_LIMIT:
            description = description[:DESCRIPTION_LIMIT - 1] + "\u2026"
        context = (self._text(build, self.context) if self.context is not None
                   else CONTEXT_PREFIX + build.builder.name)
        body: dict[str, Any] = {"state": state, "description": description,
                                "context": context}
        url = self.master_status.getURLForThing(build)
        if url:
            body["target_url"] = url
        endpoint = (f"{self.baseURL}/repos/{quote(owner, safe='')}/{quote(repo, safe='')}"
                    f"/statuses/{quote(sha, safe='')}")
        return [Notification(key=key, what=what, recipients=[f"{owner}/{repo}@{sha}"],
                             payload=(endpoint, body), builder=build.builder.name,
                             build_number=build.number)]

    @staticmethod
    def _text(build: BuildStatus, value: Any) -> str:
        rendered = build.render(value)
        return "" if rendered is None or rendered is False else str(rendered).strip()

    # -- delivering ----------------------------------------------------------------------

    def deliver(self, notification: Notification) -> str:
        endpoint, body = notification.payload
        answer = self.http.post(endpoint, json_body=body, headers={
            "Authorization": f"token {self._token}", "Accept": ACCEPT,
            "X-GitHub-Api-Version": "2022-11-28"})
        log.info('Status "%s" sent for %s.', body["state"], notification.recipients[0])
        return str(answer)
