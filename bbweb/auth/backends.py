"""Authentication back ends: the objects given as ``Authz(auth=…)``.

They keep Buildbot 0.8's interface (``authenticate(user, passwd)``, ``errmsg()``,
``getUserInfo(user)``, a ``master`` attribute set at startup) so a custom 0.8 ``IAuth``
subclass keeps working. ``master`` is bbweb's :class:`bbweb.plugins.site.Site` (the database is
``master.db``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from typing import Any

from bbweb.auth import users
from bbweb.auth.htpasswd import HtpasswdFile
from bbweb.mastercfg.errors import argument_error, caller_location

log = logging.getLogger("bbweb.auth")


class IAuth:
    """Base class of authentication back ends (0.8's ``status.web.auth.AuthBase``)."""

    master: Any = None
    err: str = ""

    def authenticate(self, user: str, passwd: str) -> bool:
        """Whether ``user``/``passwd`` are valid credentials."""
        raise NotImplementedError

    def errmsg(self) -> str:
        """Why the last :meth:`authenticate` failed."""
        return self.err

    def getUserInfo(self, user: str) -> dict[str, Any]:
        """What the pages show about a logged-in user."""
        return {"userName": user, "fullName": user, "email": f"{user}@localhost",
                "groups": [user]}


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


class BasicAuth(IAuth):
    """``BasicAuth([('bob', 'secret'), …])``: users and passwords from master.cfg.

    Compared in constant time over every entry (no early exit that a timer could see).
    """

    def __init__(self, userpass: Any) -> None:
        if (not isinstance(userpass, list | tuple) or not userpass
                or not all(isinstance(p, list | tuple) and len(p) == 2
                           and all(isinstance(s, str) for s in p) and p[0]
                           for p in userpass)):
            argument_error("BasicAuth: give a non-empty list of ('user', 'password') pairs "
                           "of strings")
            userpass = []  # nobody logs in; checkconfig lists the file's other mistakes too
        self.userpass = [(u, p) for u, p in userpass]

    def authenticate(self, user: str, passwd: str) -> bool:
        user_d, pw_d = _digest(user), _digest(passwd)
        ok = False
        for u, p in self.userpass:
            ok |= hmac.compare_digest(user_d, _digest(u)) & hmac.compare_digest(pw_d,
                                                                               _digest(p))
        self.err = "" if ok else "Invalid username or password"
        return ok


def _config_relative(path: str) -> str:
    """A relative path is relative to the directory of the master.cfg that names it."""
    path = os.path.expanduser(os.fspath(path))
    if os.path.isabs(path):
        return path
    where = caller_location()
    base = os.path.dirname(where.filename) if where else os.getcwd()
    return os.path.normpath(os.path.join(base, path))


class HTPasswdAuth(IAuth):
    """``HTPasswdAuth('/path/to/htpasswd')``: users of a file written by Apache's
    ``htpasswd``, in any of the formats it writes (0.8 understood DES crypt only).
    A relative path is relative to the basedir."""

    def __init__(self, file: str) -> None:
        self._htpasswd: HtpasswdFile | None = None  # nobody logs in until it is right
        if not isinstance(file, str | os.PathLike) or not os.fspath(file):
            argument_error(f"{type(self).__name__}: give the path of an htpasswd file")
            self.file = ""
            return
        self.file = _config_relative(file)
        if not os.path.isfile(self.file):
            argument_error(f"{type(self).__name__}: no such file: {self.file}")
            return
        self._htpasswd = HtpasswdFile(self.file)

    def authenticate(self, user: str, passwd: str) -> bool:
        if self._htpasswd is None:
            self.err = f"No such file: {self.file}"
            return False
        try:
            ok = self._htpasswd.check(user, passwd)
        except OSError as exc:
            log.error("%s: cannot read %s: %s", type(self).__name__, self.file,
                      exc.strerror or exc)
            self.err = f"No such file: {self.file}"
            return False
        self.err = "" if ok else "Invalid user/passwd"
        return ok


class HTPasswdAprAuth(HTPasswdAuth):
    """0.8's libaprutil-backed variant; in bbweb identical to :class:`HTPasswdAuth`, which
    already understands apr1, SHA-1 and every other format ``htpasswd`` writes."""


class UsersAuth(IAuth):
    """``UsersAuth()``: the users in the status database (``bbweb user add …``), checked
    by ``bb_username`` and ``bb_password``."""

    def authenticate(self, user: str, passwd: str) -> bool:
        if self.master is None:
            self.err = "the users database is not available"
            return False
        ok = users.check_password(self.master.db, user, passwd)
        self.err = "" if ok else "no user found with those credentials"
        return ok

    def getUserInfo(self, user: str) -> dict[str, Any]:
        info = super().getUserInfo(user)
        if self.master is not None:
            found = users.user_by_username(self.master.db, user)
            if found is not None:
                info["fullName"] = found.attributes.get("full_name", user)
                info["email"] = found.attributes.get("email", info["email"])
        return info
