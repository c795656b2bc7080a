"""A local plain-HTTP stand-in for GitHub's commit statuses endpoint.

It checks every request against GitHub's documented API
(``POST /repos/{owner}/{repo}/statuses/{sha}``: ``Authorization: token …`` or
``Bearer …``, ``Accept: application/vnd.github+json``, a JSON object with ``state`` one
of error/failure/pending/success and optional string ``target_url``, ``description`` (at
most 140 characters) and ``context``, nothing else) and answers 201 with the created
status, as GitHub does. A request that breaks the rules is answered 422 and kept in
:attr:`GitHubApi.invalid` for the test to assert on.

Scripted answers (:meth:`GitHubApi.script`) simulate an outage (5xx), a refusal (422)
and a used-up rate limit (403 with ``X-RateLimit-Remaining: 0`` and
``X-RateLimit-Reset``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = re.compile(r"^/(?:api/v3/)?repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/statuses/"
                  r"(?P<sha>[^/]+)$")
STATES = {"error", "failure", "pending", "success"}
FIELDS = {"state", "target_url", "description", "context"}


@dataclass
class Seen:
    at: float
    path: str
    headers: dict[str, str]
    body: Any
    answer: int
    problems: list[str] = field(default_factory=list)
    reset: float | None = None  # a rate-limit answer's X-RateLimit-Reset


class GitHubApi:
    def __init__(self, token: str) -> None:
        self.token = token
        self.seen: list[Seen] = []
        self.invalid: list[Seen] = []
        self._script: deque[tuple[str, float]] = deque()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> GitHubApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, *answers: tuple[str, float]) -> None:
        """Answers for the next requests, in order: ``("5xx", 0)``, ``("422", 0)``,
        ``("ratelimit", seconds until the reset)``; afterwards 201 again."""
        with self._lock:
            self._script.extend(answers)

    def statuses(self) -> list[Seen]:
        """The requests answered 201."""
        return [s for s in self.seen if s.answer == 201]

    def check(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[Any, list[str]]:
        problems = []
        if not PATH.match(path):
            problems.append(f"path {path!r} is not /repos/{{owner}}/{{repo}}/statuses/{{sha}}")
        auth = headers.get("authorization", "")
        if auth not in (f"token {self.token}", f"Bearer {self.token}"):
            problems.append("Authorization is not the token")
        if headers.get("accept") != "application/vnd.github+json":
            problems.append(f"Accept is {headers.get('accept')!r}")
        if not headers.get("content-type", "").startswith("application/json"):
            problems.append("the body is not JSON")
        try:
            body = json.loads(raw)
        except ValueError:
            return None, [*problems, "the body does not parse"]
        if not isinstance(body, dict):
            return body, [*problems, "the body is not an object"]
        if body.get("state") not in STATES:
            problems.append(f"state {body.get('state')!r} is not one of {sorted(STATES)}")
        for key in set(body) - FIELDS:
            problems.append(f"unknown field {key!r}")
        for key in FIELDS - {"state"}:
            if key in body and not isinstance(body[key], str):
                problems.append(f"{key} is not a string")
        if len(str(body.get("description", ""))) > 140:
            problems.append("description longer than 140 characters")
        return body, problems

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, doc: Any, headers: dict[str, str] | None = None
                      ) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                body, problems = api.check(self.path, headers, raw)
                with api._lock:
                    scripted = api._script.popleft() if api._script else None
                seen = Seen(time.time(), self.path, headers, body, 201, problems)
                api.seen.append(seen)
                if problems:
                    api.invalid.append(seen)
                    seen.answer = 422
                    self._send(422, {"message": "Validation Failed", "errors": problems})
                    return
                if scripted is not None:
                    kind, value = scripted
                    if kind == "5xx":
                        seen.answer = 502
                        self._send(502, {"message": "Server Error"})
                        return
                    if kind == "422":
                        seen.answer = 422
                        self._send(422, {"message": "No commit found for SHA"})
                        return
                    if kind == "ratelimit":
                        seen.answer = 403
                        reset = int(time.time() + value) + 1
                        self._send(403, {"message": "API rate limit exceeded"}, {
                            "X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset": str(reset)})
                        seen.reset = reset
                        return
                self._send(201, {"id": len(api.seen), "state": body["state"],
                                 "context": body.get("context", "default")})

            do_GET = do_PUT = do_PATCH = do_DELETE = lambda self: self._send(  # noqa: E731
                404, {"message": "Not Found"})

        return Handler
