"""Reading Apache htpasswd files and checking passwords against them.

Every hash Apache's ``htpasswd`` writes is understood: MD5 ``$apr1$`` (``-m``, the
default), SHA-1 ``{SHA}`` (``-s``), bcrypt ``$2y$`` (``-B``), SHA-256/512 crypt
(``-2``/``-5``) and DES crypt (``-d``), plus MD5 crypt ``$1$`` that Apache accepts through
the system's ``crypt()``; they are verified with passlib. Plain text (``htpasswd -p``) is
refused, as Apache on Unix refuses it, and so is any value in a format not listed: were
it compared as plain text, the stored hash itself would be the password. A file is re-read
when it changes (size, mtime or inode), so ``htpasswd`` can edit it while the site runs.
A line that is not ``user:hash`` is skipped with a log message naming the file and line
number.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field

from passlib.registry import get_crypt_handler

log = logging.getLogger("bbweb.auth")

_DES = re.compile(r"^[./0-9A-Za-z]{13}$")
# tried in this order; the first whose ``identify`` accepts the hash decides
_SCHEMES = ("bcrypt", "sha256_crypt", "sha512_crypt", "apr_md5_crypt", "md5_crypt",
            "ldap_sha1")
# a valid apr1 hash of nothing anyone will type: checked for unknown users so that a
# wrong user name takes about as long as a wrong password
_DUMMY = "$apr1$bbweb0000$wZ0cF2fXZBoG1p1dlzBeV/"


def verify_hash(password: str, stored: str, where: str = "htpasswd") -> bool:
    """Whether ``password`` matches one htpasswd entry's stored value (``where`` names
    the entry in log messages)."""
    try:
        if _DES.match(stored):
            return bool(get_crypt_handler("des_crypt").verify(password, stored))
        for scheme in _SCHEMES:
            handler = get_crypt_handler(scheme)
            if handler.identify(stored):
                return bool(handler.verify(password, stored))
    except (ValueError, TypeError) as exc:  # a damaged hash
        log.error("%s: cannot verify the stored hash: %s", where, exc)
        return False
    # plain text (``htpasswd -p``) or a format we do not know: never compared as text
    log.error("%s: the stored password is plain text or in an unknown format; it is "
              "refused (as Apache on Unix refuses it): set it again with 'htpasswd -B'",
              where)
    return False


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
        return verify_hash(password, stored, f"htpasswd file {self.path} user {user!r}")
