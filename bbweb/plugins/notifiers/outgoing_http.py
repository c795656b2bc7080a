"""Outgoing HTTP for notifiers (HTTP status push, GitHub): one place that decides what an
answer means for the notifier framework.

* a connection error, a timeout, a 5xx, 408 or 429 may work later: :class:`DeliveryError`,
  and the daemon tries the event again (after ``Retry-After`` or a rate limit's reset
  when the server says when);
* any other 4xx will not get better by repeating it: :class:`Rejected`;
* 2xx is success; 3xx is not followed (a redirect of a POST with a token in it is not
  something to obey blindly) and counts as rejected.

Secrets (tokens, HMAC keys, passwords in URLs) never appear in the texts this module
returns or raises: URLs are shown without their user-info part, headers are never shown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from bbweb import __version__
from bbweb.plugins.notifiers.base import DeliveryError, Rejected

USER_AGENT = f"bbweb/{__version__}"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
MAX_WAIT = 3600.0 + 60.0
"""The longest a server may ask us to wait (GitHub's rate-limit window is an hour)."""
ANSWER_LIMIT = 300  # characters of a response body kept in an error message


def redact_url(url: str) -> str:
    """``url`` without ``user:password@``, for logs and /notifications."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def check_http_url(url: Any) -> str | None:
    """Why ``url`` is not an http(s) URL a notifier can post to, or None."""
    if not isinstance(url, str) or not url.strip():
        return "is empty"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{redact_url(url)!r} is not an http:// or https:// URL"
    return None


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"{self.status} {self.reason}".strip()


class HttpClient:
    """A ``requests`` Session with timeouts and bbweb's User-Agent."""

    def __init__(self, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 read_timeout: float = DEFAULT_READ_TIMEOUT,
                 clock: Any = time.time) -> None:
        self.timeout = (connect_timeout, read_timeout)
        self.clock = clock
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
            self._session.headers["User-Agent"] = USER_AGENT
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def post(self, url: str, *, data: Any = None, json_body: Any = None,
             headers: dict[str, str] | None = None) -> Answer:
        """POST and classify the answer (see the module's docstring); returns the 2xx
        answer."""
        shown = redact_url(url)
        try:
            resp = self.session.post(url, data=data, json=json_body, headers=headers,
                                     timeout=self.timeout, allow_redirects=False)
        except requests.Timeout as exc:
            raise DeliveryError(f"POST {shown}: timed out ({type(exc).__name__})") from None
        except requests.RequestException as exc:
            raise DeliveryError(f"POST {shown}: {_connection_problem(exc)}") from None
        answer = Answer(resp.status_code, resp.reason or "", resp.text[:ANSWER_LIMIT])
        if 200 <= resp.status_code < 300:
            return answer
        detail = f"POST {shown}: {answer}" + (f": {answer.text.strip()}"
                                              if answer.text.strip() else "")
        wait = self.wait_asked(resp)
        if wait is not None:
            raise DeliveryError(detail + f" (the server asks to wait {wait:.0f}s)",
                                retry_after=wait)
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise DeliveryError(detail)
        raise Rejected(detail)

    def wait_asked(self, resp: requests.Response) -> float | None:
        """Seconds the server asks us to wait before trying again: ``Retry-After``, or a
        rate limit used up (``X-RateLimit-Remaining: 0``) until ``X-RateLimit-Reset``
        (epoch seconds), on 403 or 429. None if it does not say."""
        if resp.status_code not in (403, 429, 503):
            return None
        retry_after = resp.headers.get("Retry-After", "").strip()
        if retry_after.isdigit():
            return min(float(retry_after), MAX_WAIT)
        if resp.status_code in (403, 429) and \
                resp.headers.get("X-RateLimit-Remaining", "").strip() == "0":
            reset = resp.headers.get("X-RateLimit-Reset", "").strip()
            try:
                wait = float(reset) - float(self.clock())
            except ValueError:
                return 60.0
            # one second more: the reset time is whole seconds
            return min(max(wait, 0.0) + 1.0, MAX_WAIT)
        return None


def _connection_problem(exc: requests.RequestException) -> str:
    """A short reason without the request's headers (the exception text may hold the URL
    with its user-info, so it is not used)."""
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect (ConnectionError)"
    return type(exc).__name__
