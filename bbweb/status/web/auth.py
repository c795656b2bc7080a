"""0.8's ``buildbot.status.web.auth``: see :mod:`bbweb.auth.backends`."""

from bbweb.auth.backends import (
    BasicAuth,
    HTPasswdAprAuth,
    HTPasswdAuth,
    IAuth,
    UsersAuth,
)

AuthBase = IAuth  # 0.8's base class name

__all__ = ["AuthBase", "BasicAuth", "HTPasswdAprAuth", "HTPasswdAuth", "IAuth", "UsersAuth"]
