"""Reading Apache htpasswd files and checking passwords against them.

Every hash Apache's ``htpasswd`` writes is understood: MD5 ``$apr1$`` (``-m``, the
default), SHA-1 ``{SHA}`` (``-s``), bcrypt ``$2y$`` (``-B``), SHA-256/512 crypt
(``-2``/``-5``) and DES crypt (``-d``), plus MD5 crypt ``$1$`` that Apache accepts through
the system's ``crypt()``; they are verified with passlib (a bcrypt password longer than
72 bytes on its first 72 bytes, as Apache verifies it). Plain text (``htpasswd -p``) is
refused, as Apache on Unix refuses it, and so is any value in a format not listed: were
it compared as plain text, the stored hash itself would be the password. A file is re-read
when it changes (size, mtime or inode), so ``htpasswd`` can edit it while the site runs.
A line that is not ``user:hash`` is skipped with a log message naming the file and line
number.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("bbweb.auth")

_DES = re.compile(r"^[./0-9A-Za-z]{13}$")
# tried in this order; the first whose ``identify`` accepts the hash decides
_SCHEMES = ("bcrypt", "sha256_crypt", "sha512_crypt", "apr_md5_crypt", "md5_crypt",
            "ldap_sha1")
BCRYPT_MAX_BYTES = 72  # what bcrypt hashes of a password (see _secret_for)
VERIFIED_TTL = 300.0  # seconds a verified password is remembered (per process)
VERIFIED_MAX = 1000  # remembered users at most (then forgotten all at once)
# a valid apr1 hash of nothing anyone will type: checked for unknown users so that a
# wrong user name takes about as long as a wrong password
_DUMMY = "$apr1$bbweb0000$wZ0cF2fXZBoG1p1dlzBeV/"


def verify_hash(password: str, stored: str, where: str = "htpasswd") -> bool:
    """Whether ``password`` matches one htpasswd entry's stored value (``where`` names
    the entry in log messages)."""
    from passlib.registry import get_crypt_handler  # only where htpasswd files are used

    try:
        if _DES.match(stored):
            return bool(get_crypt_handler("des_crypt").verify(password, stored))
        for scheme in _SCHEMES:
            handler = get_crypt_handler(scheme)
            if handler.identify(stored):
                return bool(handler.verify(_secret_for(scheme, password), stored))
    except (ValueError, TypeError) as exc:  # a damaged hash
        log.error("%s: cannot verify the stored hash: %s", where, exc)
        return False
    # plain text (``htpasswd -p``) or a format we do not know: never compared as text
    log.error("%s: the stored password is plain text or in an unknown format; it is "
              "refused (as Apache on Unix refuses it): set it again with 'htpasswd -B'",
              where)
    return False


def _secret_for(scheme: str, password: str) -> str | bytes:
    """bcrypt looks at 72 bytes of a password at most. Apache's ``htpasswd -B`` hashes
    only the first 72 bytes of a longer one, and Apache checks a login the same way, so
    any password whose first 72 bytes match is accepted there; bcrypt 5 raises on a
    longer password instead, which would lock such a user out. The cut is made in UTF-8
    bytes, as Apache makes it, even through a character."""
    if scheme != "bcrypt":
        return password
    return password.encode("utf-8", "surrogateescape")[:BCRYPT_MAX_BYTES]


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
    # user -> (stored hash, keyed digest of the password, expiry): recent good checks
    _verified: dict[str, tuple[str, bytes, float]] = field(default_factory=dict)
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

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
        """Whether the file has ``user`` with ``password``.

        A password verified in the last ``VERIFIED_TTL`` seconds against the same stored
        hash is accepted from memory: in header mode every request carries the password,
        and a bcrypt check per page would make every page slow. Only a keyed digest is
        kept, never the password."""
        stored = self.entries().get(user)
        if stored is None:
            # as slow as a real user's check: an unknown name must not answer faster
            verify_hash(password, self._timing_dummy(), f"htpasswd file {self.path}")
            return False
        digest = hmac.new(self._key, password.encode("utf-8", "surrogateescape"),
                          hashlib.sha256).digest()
        now = time.monotonic()
        with self._lock:
            seen = self._verified.get(user)
        if seen is not None and seen[0] == stored and seen[2] > now \
                and hmac.compare_digest(seen[1], digest):
            return True
        ok = verify_hash(password, stored, f"htpasswd file {self.path} user {user!r}")
        if ok:
            with self._lock:
                if len(self._verified) >= VERIFIED_MAX:
                    self._verified.clear()
                self._verified[user] = (stored, digest, now + VERIFIED_TTL)
        return ok

    def _timing_dummy(self) -> str:
        """A hash of the file's own kind (its first hashed entry), else an apr1 one."""
        for stored in self._entries.values():
            if _DES.match(stored) or stored.startswith(("$", "{SHA}")):
                return stored
        return _DUMMY
