"""HTTP Basic protection of ``/change_hook`` (WebStatus ``change_hook_auth``).

Accepted forms, as Buildbot users wrote them: a ``('user', 'password')`` pair (the seed's
example), or a list of "strcred" strings: ``"memory:USER:PASS[:USER2:PASS2…]"`` and
``"file:PATH"`` (one ``user:password`` per line, relative to the basedir).
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from flask import Response, request


def validate_hook_auth(value: Any) -> str | None:
    """A message saying what is wrong with a ``change_hook_auth`` value, or None."""
    if value is None:
        return None
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        return "change_hook_auth must be ('user', 'password') or a list of 'memory:…'/'file:…'"
    for item in value:
        if not isinstance(item, str):
            return ("change_hook_auth entries must be strings like 'memory:user:pass' or "
                    "'file:path' (credential checker objects are not supported)")
        kind, _, rest = item.partition(":")
        if kind == "memory":
            parts = rest.split(":")
            if len(parts) < 2 or len(parts) % 2:
                return f"change_hook_auth {item!r}: use memory:USER:PASS[:USER:PASS…]"
        elif kind == "file":
            if not rest:
                return f"change_hook_auth {item!r}: file: needs a path"
        else:
            return f"change_hook_auth {item!r}: unknown kind {kind!r} (memory or file)"
    return None


def _credentials(value: Any, basedir: str) -> list[tuple[str, str]]:
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return [value]
    if isinstance(value, str):
        value = [value]
    creds: list[tuple[str, str]] = []
    for item in value:
        kind, _, rest = item.partition(":")
        if kind == "memory":
            parts = rest.split(":")
            creds.extend(zip(parts[::2], parts[1::2], strict=True))
        elif kind == "file":
            path = rest if os.path.isabs(rest) else os.path.join(basedir, rest)
            try:
                with open(path, encoding="utf-8") as fh:
                    for line in fh:
                        line = line.rstrip("\r\n")
                        if line and not line.startswith("#") and ":" in line:
                            user, _, password = line.partition(":")
                            creds.append((user, password))
            except OSError:
                continue  # unreadable file: nobody gets in through it
    return creds


def check_hook_auth(value: Any, basedir: str) -> Response | None:
    """None if the request may proceed, else the 401 challenge to send."""
    if value is None:
        return None
    auth = request.authorization
    if auth is not None and auth.type == "basic":
        user = (auth.username or "").encode()
        password = (auth.password or "").encode()
        ok = False
        for u, p in _credentials(value, basedir):
            # evaluate both comparisons every time: no early exit on the user name
            ok |= hmac.compare_digest(user, u.encode()) & hmac.compare_digest(password,
                                                                               p.encode())
        if ok:
            return None
    return Response("Authentication required\n", status=401, mimetype="text/plain",
                    headers={"WWW-Authenticate": 'Basic realm="Protected area"'})
