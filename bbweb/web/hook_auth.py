"""HTTP Basic protection of ``/change_hook`` (WebStatus ``change_hook_auth``).

Accepted forms:

* ``('user', 'password')``: one pair (Buildbot's documented example);
* a list of pairs ``[('u1', 'p1'), ('u2', 'p2')]``;
* an htpasswd file path, ``'hooks.htpasswd'`` or ``'htpasswd:hooks.htpasswd'`` (relative
  to the basedir), as written by Apache's ``htpasswd`` (bcrypt ``-B``, MD5 ``-m``, SHA-1
  ``-s``, crypt ``-d``; plain ``-p`` entries are refused, as Apache refuses them), read by
  :mod:`bbweb.auth.htpasswd` like the web logins' files; re-read when it changes;
* Buildbot's "strcred" strings: ``"memory:USER:PASS[:USER2:PASS2…]"`` and ``"file:PATH"``
  (one plain-text ``user:password`` per line, relative to the basedir);

or a list mixing any of these. Every request to any dialect must then carry HTTP Basic
credentials that one of them accepts; otherwise the answer is 401 with
``WWW-Authenticate: Basic realm="Protected area"`` (Buildbot's documented realm). Passwords are
compared in constant time (digests of equal length, every entry checked).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from typing import Any

from flask import Response, current_app, request

from bbweb.auth.htpasswd import HtpasswdFile
from bbweb.mastercfg.hook_auth import classify, entries, is_pair

log = logging.getLogger("bbweb.change_hook")

REALM = "Protected area"
def _resolve(path: str, basedir: str) -> str:
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.join(basedir, path)


def _plain_file(path: str) -> list[tuple[str, str]]:
    creds: list[tuple[str, str]] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.rstrip("\r\n")
                if line and not line.startswith("#") and ":" in line:
                    user, _, password = line.partition(":")
                    creds.append((user, password))
    except OSError as exc:
        log.error("change_hook_auth: cannot read %s (%s); nobody gets in through it", path,
                  exc.strerror or exc)
    return creds


def _htpasswd(path: str) -> HtpasswdFile:
    """The htpasswd file at ``path`` (the same reader as the web logins, re-read when the
    file changes), one per path and app."""
    files = current_app.extensions.setdefault("bbweb_hook_htpasswd", {})
    ht = files.get(path)
    if ht is None:
        ht = files.setdefault(path, HtpasswdFile(path))
    return ht


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def _check_htpasswd(path: str, user: str, password: str) -> bool:
    """Plain-text and unknown entries are refused (see bbweb.auth.htpasswd)."""
    try:
        return _htpasswd(path).check(user, password)
    except OSError as exc:
        log.error("change_hook_auth: cannot read htpasswd file %s (%s); nobody gets in "
                  "through it", path, exc.strerror or exc)
        return False


def credentials_ok(value: Any, basedir: str, user: str, password: str) -> bool:
    """Whether ``user``/``password`` is accepted by the configured ``change_hook_auth``."""
    user_d, password_d = _digest(user), _digest(password)
    ok = False
    pairs: list[tuple[str, str]] = []
    for item in entries(value):
        if is_pair(item):
            pairs.append((item[0], item[1]))
            continue
        kind, rest = classify(item)
        if kind == "memory":
            parts = rest.split(":")
            pairs.extend(zip(parts[::2], parts[1::2], strict=True))
        elif kind == "file":
            pairs.extend(_plain_file(_resolve(rest, basedir)))
        elif kind == "htpasswd":
            ok |= _check_htpasswd(_resolve(rest, basedir), user, password)
    for u, p in pairs:
        # every entry, both comparisons, equal-length digests: no early exit to time
        ok |= hmac.compare_digest(user_d, _digest(u)) & hmac.compare_digest(password_d,
                                                                           _digest(p))
    return ok


def challenge() -> Response:
    return Response("Authentication required\n", status=401, mimetype="text/plain",
                    headers={"WWW-Authenticate": f'Basic realm="{REALM}"',
                             "X-Content-Type-Options": "nosniff"})


def check_hook_auth(value: Any, basedir: str) -> Response | None:
    """None if the request may proceed, else the 401 challenge to send."""
    if value is None:
        return None
    auth = request.authorization
    if auth is not None and auth.type == "basic" and auth.username:
        if credentials_ok(value, basedir, auth.username, auth.password or ""):
            return None
        log.warning("change hook: wrong credentials for user %r from %s", auth.username[:64],
                    request.remote_addr)
    return challenge()
