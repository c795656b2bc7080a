"""0.8's ``buildbot.status.web.authz``: see :mod:`bbweb.auth.authz`."""

from bbweb.auth.authz import ACTIONS, Authz

__all__ = ["ACTIONS", "Authz"]
