"""The worker's side of ``/api/worker``: one small class per HTTP conversation.

Every call is a JSON POST with HTTP Basic credentials (step output goes in the compact
form of :mod:`bbweb.worker.logframes` when the master takes it). A master that is restarting
or briefly unreachable is waited for (with backoff) instead of failing the build; a wrong
password is never retried, because retrying cannot fix it.

Retrying is safe because every call carries an ``Idempotency-Key`` header, made once per
call and sent again with each retry: when the master did act on a call whose answer was
lost on the way back, it answers the retry as it answered the first time and does nothing
again (no log chunk stored twice, no step started twice).
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from typing import Any
from urllib.parse import quote

import requests

from bbweb.worker import logframes

log = logging.getLogger("bbweb.worker")

RETRY_FOR = 120.0  # seconds a call keeps retrying while the master is unreachable
MAX_BACKOFF = 5.0
JSON_TEXT_BYTES = 4 * 1024 * 1024  # text per request to a master that takes JSON only


class AuthenticationError(Exception):
    """The master refused our name or password (HTTP 401)."""


class MasterGone(Exception):
    """The master could not be reached for longer than the retry budget."""


class Refused(RuntimeError):
    """The master refused a call with a 4xx answer other than 401, 404 and 409."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


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
        self.log_frames = True  # until the master refuses them (an older master)
        self.features: frozenset[str] = frozenset()  # what the master's hello announced

    def copy(self, retry_for: float | None = None) -> MasterClient:
        """A new client (its own connection) for the same master and identity."""
        auth = self.session.auth
        assert isinstance(auth, tuple)
        other = MasterClient(self.base[: -len("/api/worker")], auth[0], auth[1],
                             self.retry_for if retry_for is None else retry_for)
        other.features = self.features
        return other

    def close(self) -> None:
        self.session.close()

    def call(self, path: str, body: dict[str, Any] | None = None,
             timeout: float = 30.0) -> dict[str, Any] | None:
        """POST ``body`` to ``path``; the decoded answer, or None for 204 No Content."""
        resp = self.post(path, body, timeout)
        return None if resp.status_code == 204 else resp.json()

    def post(self, path: str, body: dict[str, Any] | None = None,
             timeout: float = 30.0, data: bytes | None = None,
             content_type: str | None = None) -> requests.Response:
        """POST ``body`` to ``path`` and return the (2xx) response. Connection errors
        and 5xx answers are retried (with the same Idempotency-Key) for up to
        ``retry_for`` seconds; 401, 404/409 and other 4xx raise."""
        deadline = time.monotonic() + self.retry_for
        delay = 0.2
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        if data is not None:
            headers["Content-Type"] = content_type or "application/octet-stream"
        while True:
            try:
                if data is not None:
                    resp = self.session.post(self.base + path, data=data, timeout=timeout,
                                             headers=headers)
                else:
                    resp = self.session.post(self.base + path, json=body or {},
                                             timeout=timeout, headers=headers)
            except requests.RequestException as exc:
                problem = f"cannot reach the master: {exc}"
            else:
                if resp.status_code == 401:
                    raise AuthenticationError(_message(resp))
                if resp.status_code in (404, 409):
                    raise NotOurs(_message(resp))
                if resp.status_code < 300:
                    return resp
                if resp.status_code < 500:
                    raise Refused(f"the master refused {path}: {resp.status_code} "
                                  f"{_message(resp)}", resp.status_code)
                problem = f"the master answered {resp.status_code} to {path}"
            if time.monotonic() + delay > deadline:
                raise MasterGone(problem)
            log.warning("%s; retrying in %.1fs", problem, delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    # -- the protocol ----------------------------------------------------------------------
    def hello(self, info: dict[str, Any], session: str | None = None,
              running: list[int] | None = None) -> dict[str, Any]:
        """Announce this worker process. ``running`` lists the builds it runs (none, when
        it has just started): the master ends every other build it thought ours."""
        body: dict[str, Any] = {"info": info}
        if session is not None:
            body.update(session=session, running=running or [])
        answer = self.call("/hello", body) or {}
        features = answer.get("features")
        self.features = frozenset(f for f in features if isinstance(f, str)) \
            if isinstance(features, list) else frozenset()
        return answer

    def heartbeat(self, running: list[int], session: str | None = None,
                  settled: int | None = None) -> list[dict[str, Any]]:
        """Say we are alive and what we run; ``settled`` is the number of our last claim
        whose build (if any) is in ``running`` already."""
        body: dict[str, Any] = {"running": running}
        if session is not None:
            body.update(session=session, settled=settled)
        return (self.call("/heartbeat", body) or {}).get("commands", [])

    def claim(self, wait: float, seq: int | None = None) -> dict[str, Any] | None:
        """Long-poll for work. The answer (None when the wait ran out) may carry ``lease``
        (confirm it to get the build), ``build`` (run it), ``commands`` (e.g. a ping to
        answer), ``poll_after`` (the master could not wait: ask again after that many
        seconds) or ``shutdown`` (the worker was asked to shut down gracefully: exit).
        ``seq`` numbers our claims; without it the master starts the build at once."""
        body: dict[str, Any] = {"wait": wait}
        if seq is not None:
            body["seq"] = seq
        resp = self.post("/claim", body, timeout=wait + 30)
        if resp.status_code != 204:
            return resp.json()
        try:
            return {"poll_after": float(resp.headers["X-Poll-After"])}
        except (KeyError, ValueError):
            return None

    def confirm(self, request_id: int, session: str, seq: int) -> dict[str, Any]:
        """Confirm the lease a claim answered: the master starts the build and answers
        it (``"build"``) with its first step (``"step"``, null when there is none to run;
        an older master leaves it out: ask :meth:`next_step`). :class:`NotOurs` when the
        lease ran out and the request went to another."""
        answer = self.call(f"/leases/{request_id}/confirm",
                           {"session": session, "seq": seq, "step": True}) or {}
        if not isinstance(answer.get("build"), dict):
            raise NotOurs(f"the master gave no build for request {request_id}")
        return answer

    def pong(self, token: float) -> bool:
        """Answer a ping command (``token`` is what the command carried)."""
        return bool((self.call("/pong", {"token": token}, timeout=10) or {}).get("answered"))

    def next_step(self, buildid: int) -> dict[str, Any] | None:
        return (self.call(f"/builds/{buildid}/next_step") or {}).get("step")

    def send_log(self, stepid: int, frames: list[logframes.Frame], logname: str = "stdio"
                 ) -> bool:
        """Append output (frames compressed already, :mod:`bbweb.worker.logframes`); True
        when the master wants this build stopped. A master that does not take frames gets
        the text as JSON."""
        if self.log_frames:
            try:
                resp = self.post(f"/steps/{stepid}/log?log={quote(logname, safe='')}",
                                 data=logframes.body(frames),
                                 content_type=logframes.MEDIA_TYPE)
            except Refused as exc:
                if exc.status not in (400, 415):
                    raise
                log.info("the master does not take compressed log frames (%s); sending "
                         "JSON", exc)
                self.log_frames = False
            else:
                return bool((resp.json() or {}).get("stop"))
        stop = False
        for group in _text_groups(frames, JSON_TEXT_BYTES):
            answer = self.call(f"/steps/{stepid}/log", {
                "log": logname, "chunks": [[f.stream, logframes.text(f)] for f in group]})
            stop = stop or bool((answer or {}).get("stop"))
        return stop

    def finish_step(self, stepid: int, rc: int | None, interrupted: str | None = None,
                    properties: dict[str, Any] | None = None, error: str | None = None,
                    *, frames: list[logframes.Frame] | None = None, logname: str = "stdio",
                    then_next: bool = False) -> dict[str, Any]:
        """Report how the step's command ended. ``frames``: its last output, carried by
        this call (only to a master whose hello announced "finish-log"). ``then_next``:
        the master starts the next step at once and answers it as ``"step"`` (null when
        the build is over; an older master leaves it out: ask :meth:`next_step`). The
        answer's ``"stop"`` says whether a stop was requested."""
        body: dict[str, Any] = {"rc": rc, "interrupted": interrupted,
                                "properties": properties or {}, "error": error}
        if frames:
            if "finish-log" not in self.features:
                raise ValueError("this master does not take output with a step's finish")
            body["log"] = {"name": logname, "frames": base64.b64encode(
                logframes.body(frames)).decode("ascii")}
        if then_next:
            body["next"] = True
        return self.call(f"/steps/{stepid}/finish", body) or {}

    def goodbye(self) -> None:
        """Tell the master we are leaving, so our unfinished builds are retried now
        instead of after the heartbeat timeout."""
        self.call("/goodbye", timeout=10)


def _text_groups(frames: list[logframes.Frame], limit: int) -> list[list[logframes.Frame]]:
    """``frames`` in order, in groups of at most ``limit`` bytes of text (or one frame)."""
    groups: list[list[logframes.Frame]] = []
    size = 0
    for frame in frames:
        if not groups or size + frame.size > limit:
            groups.append([])
            size = 0
        groups[-1].append(frame)
        size += frame.size
    return groups


def _message(resp: requests.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text.strip()[:200]
    return str(data.get("error", data)) if isinstance(data, dict) else str(data)
