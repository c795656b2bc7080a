"""0.8's ``buildbot.status.web.authz``: see :mod:`bbweb.mastercfg.authz`."""

from bbweb.mastercfg.authz import ACTIONS, Authz

__all__ = ["ACTIONS", "Authz"]
