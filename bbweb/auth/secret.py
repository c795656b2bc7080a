"""The key that signs session cookies and CSRF tokens.

It is generated once into ``BASEDIR/web-secret.key`` (mode 0600) and read by every
gunicorn process, so a session made by one process is valid in all of them and survives a
restart. Several processes starting at once agree on one key: each writes its candidate to
a temporary file and links it into place; a process that loses the race reads the
winner's. Several hosts serving one site share the key by copying that file.
"""

from __future__ import annotations

import os
import secrets
import tempfile

SECRET_FILE = "web-secret.key"
_MIN_LENGTH = 32


def load_or_create_secret(basedir: str) -> bytes:
    """The site's secret key, creating it on first use."""
    path = os.path.join(basedir, SECRET_FILE)
    for _attempt in range(3):
        try:
            with open(path, "rb") as fh:
                key = fh.read().strip()
            if len(key) >= _MIN_LENGTH:
                return key
            raise RuntimeError(f"{path} is too short to be a secret key (delete it and a "
                               "new one is made)")
        except FileNotFoundError:
            pass
        fd, tmp = tempfile.mkstemp(prefix=".web-secret.", dir=basedir)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, secrets.token_hex(32).encode("ascii") + b"\n")
            os.fsync(fd)
            os.close(fd)
            try:
                os.link(tmp, path)  # atomic, fails if another process got there first
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    raise RuntimeError(f"cannot read or create the secret key {path}")
