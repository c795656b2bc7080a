"""Authorization (``Authz``) and authentication back ends for the web status.

``from bbweb.auth import Authz, BasicAuth, HTPasswdAuth, HTPasswdAprAuth, UsersAuth`` —
also reachable as 0.8 spelled them, ``bbweb.status.web.authz`` and
``bbweb.status.web.auth``, and through ``from bbweb.config import *``.
"""

from bbweb.auth.backends import BasicAuth, HTPasswdAprAuth, HTPasswdAuth, IAuth, UsersAuth
from bbweb.mastercfg.authz import ACTIONS, Authz

__all__ = ["ACTIONS", "Authz", "BasicAuth", "HTPasswdAprAuth", "HTPasswdAuth", "IAuth",
           "UsersAuth"]
