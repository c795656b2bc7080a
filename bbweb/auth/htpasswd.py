"""Reading Apache htpasswd files and checking passwords against them.

Every format Apache's ``htpasswd`` writes is understood: MD5 ``$apr1$`` (``-m``, the
default), SHA-1 ``{SHA}`` (``-s``), bcrypt ``$2y$`` (``-B``), SHA-256/512 crypt
(``-2``/``-5``), DES crypt (``-d``) and plain text (``-p``); the hashes are verified with
passlib's Apache support. A file is re-read when it changes (size, mtime or inode), so
``htpasswd`` can edit it while the site runs. A line that is not ``user:hash`` is skipped
with a log message naming the file and line number.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import threading
from dataclasses import dataclass, field

from passlib.apache import htpasswd_context

log = logging.getLogger("bbweb.auth")

_DES = re.compile(r"^[./0-9A-Za-z]{13}$")
# tried in this order; the first whose ``identify`` accepts the hash decides
_SCHEMES = ("bcrypt", "sha256_crypt", "sha512_crypt", "apr_md5_crypt", "ldap_sha1")
# a valid apr1 hash of nothing anyone will type: checked for unknown users so that a
# wrong user name takes about as long as a wrong password
_DUMMY = "$apr1$bbweb0000$wZ0cF2fXZBoG1p1dlzBeV/"


def verify_hash(password: str, stored: str) -> bool:
    """Whether ``password`` matches one htpasswd entry's stored value."""
    try:
        if _DES.match(stored):
            return bool(htpasswd_context.handler("des_crypt").verify(password, stored))
        for scheme in _SCHEMES:
            handler = htpasswd_context.handler(scheme)
            if handler.identify(stored):
                return bool(handler.verify(password, stored))
    except (ValueError, TypeError) as exc:  # a damaged hash
        log.error("htpasswd: cannot verify a stored hash: %s", exc)
        return False
    # anything else was written by ``htpasswd -p``: plain text
    return hmac.compare_digest(password.encode("utf-8"), stored.encode("utf-8"))


def parse(text: str, name: str) -> dict[str, str]:
    """``user -> stored hash`` from an htpasswd file's text; the first line for a user
    wins (as Apache). Blank lines and ``#`` comments are ignored; malformed lines are
    logged and skipped."""
    entries: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, stored = line.partition(":")
        if not sep or not user or not stored or any(c.isspace() for c in user):
            log.warning("htpasswd file %s line %d is not 'user:password-hash'; skipped",
                        name, lineno)
            continue
        entries.setdefault(user, stored)
    return entries


@dataclass
class HtpasswdFile:
    """One htpasswd file, re-read whenever it changes on disk."""

    path: str
    _entries: dict[str, str] = field(default_factory=dict)
    _stamp: tuple[int, int, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def entries(self) -> dict[str, str]:
        """The current ``user -> hash`` map; raises OSError if the file cannot be read."""
        with self._lock:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp != self._stamp:
                with open(self.path, encoding="utf-8", errors="replace") as fh:
                    self._entries = parse(fh.read(), self.path)
                self._stamp = stamp
            return self._entries

    def check(self, user: str, password: str) -> bool:
        """Whether the file has ``user`` with ``password``."""
        stored = self.entries().get(user)
        if stored is None:
            verify_hash(password, _DUMMY)
            return False
        return verify_hash(password, stored)
