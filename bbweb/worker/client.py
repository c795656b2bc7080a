"""The worker's side of ``/api/worker``: one small class per HTTP conversation.

Every call is a plain JSON POST with HTTP Basic credentials. A master that is restarting
or briefly unreachable is waited for (with backoff) instead of failing the build; a wrong
password is never retried, because retrying cannot fix it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import requests

log = logging.getLogger("bbweb.worker")

RETRY_FOR = 120.0  # seconds a call keeps retrying while the master is unreachable
MAX_BACKOFF = 5.0


class AuthenticationError(Exception):
    """The master refused our name or password (HTTP 401)."""


class MasterGone(Exception):
    """The master could not be reached for longer than the retry budget."""


class NotOurs(Exception):
    """The master no longer considers this build or step ours (HTTP 404/409): it was
    abandoned (e.g. after missed heartbeats) or finished elsewhere."""


class MasterClient:
    """A connection to one master for one worker identity.

    Not thread-safe: each thread that talks to the master makes its own (they share
    nothing but the URL and credentials).
    """

    def __init__(self, master_url: str, name: str, password: str,
                 retry_for: float = RETRY_FOR) -> None:
        self.base = master_url.rstrip("/") + "/api/worker"
        self.name = name
        self.retry_for = retry_for
        self.session = requests.Session()
        self.session.auth = (name, password)
        self.session.headers["User-Agent"] = "bbweb-worker"

    def copy(self, retry_for: float | None = None) -> MasterClient:
        """A new client (its own connection) for the same master and identity."""
        auth = self.session.auth
        assert isinstance(auth, tuple)
        return MasterClient(self.base[: -len("/api/worker")], auth[0], auth[1],
                            self.retry_for if retry_for is None else retry_for)

    def close(self) -> None:
        self.session.close()

    def call(self, path: str, body: dict[str, Any] | None = None,
             timeout: float = 30.0) -> dict[str, Any] | None:
        """POST ``body`` to ``path``; the decoded answer, or None for 204 No Content."""
        deadline = time.monotonic() + self.retry_for
        delay = 0.2
        while True:
            try:
                resp = self.session.post(self.base + path, json=body or {}, timeout=timeout)
            except requests.RequestException as exc:
                problem = f"cannot reach the master: {exc}"
            else:
                if resp.status_code == 401:
                    raise AuthenticationError(_message(resp))
                if resp.status_code in (404, 409):
                    raise NotOurs(_message(resp))
                if resp.status_code == 204:
                    return None
                if resp.status_code < 300:
                    return resp.json()
                if resp.status_code < 500:
                    raise RuntimeError(f"the master refused {path}: {resp.status_code} "
                                       f"{_message(resp)}")
                problem = f"the master answered {resp.status_code} to {path}"
            if time.monotonic() + delay > deadline:
                raise MasterGone(problem)
            log.warning("%s; retrying in %.1fs", problem, delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    # -- the protocol ----------------------------------------------------------------------
    def hello(self, info: dict[str, Any]) -> dict[str, Any]:
        return self.call("/hello", {"info": info}) or {}

    def heartbeat(self, running: list[int]) -> list[dict[str, Any]]:
        return (self.call("/heartbeat", {"running": running}) or {}).get("commands", [])

    def claim(self, wait: float) -> dict[str, Any] | None:
        """Long-poll for work. The answer (None when the wait ran out) may carry
        ``build`` (run it), ``commands`` (e.g. a ping to answer) or ``shutdown`` (the
        worker was asked to shut down gracefully: exit)."""
        return self.call("/claim", {"wait": wait}, timeout=wait + 30)

    def pong(self, token: float) -> bool:
        """Answer a ping command (``token`` is what the command carried)."""
        return bool((self.call("/pong", {"token": token}, timeout=10) or {}).get("answered"))

    def next_step(self, buildid: int) -> dict[str, Any] | None:
        return (self.call(f"/builds/{buildid}/next_step") or {}).get("step")

    def send_log(self, stepid: int, chunks: list[tuple[str, str]], logname: str = "stdio"
                 ) -> bool:
        """Append output; True when the master wants this build stopped."""
        answer = self.call(f"/steps/{stepid}/log", {"log": logname,
                                                     "chunks": [list(c) for c in chunks]})
        return bool((answer or {}).get("stop"))

    def finish_step(self, stepid: int, rc: int | None, interrupted: str | None = None,
                    properties: dict[str, Any] | None = None, error: str | None = None
                    ) -> bool:
        answer = self.call(f"/steps/{stepid}/finish", {
            "rc": rc, "interrupted": interrupted, "properties": properties or {},
            "error": error})
        return bool((answer or {}).get("stop"))

    def goodbye(self) -> None:
        """Tell the master we are leaving, so our unfinished builds are retried now
        instead of after the heartbeat timeout."""
        self.call("/goodbye", timeout=10)


def _message(resp: requests.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text.strip()[:200]
    return str(data.get("error", data)) if isinstance(data, dict) else str(data)
