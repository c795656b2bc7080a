"""``Authz``: who may do what on the web status (Buildbot 0.8's ``status.web.authz``).

An ``Authz`` is configuration only: it holds, for each action, ``False`` (nobody),
``True`` (anybody), ``'auth'`` (any logged-in user) or a callable ``(username, *objects)``
(a logged-in user for whom it returns true). The per-request decisions are made by
:mod:`bbweb.web.authz`, which knows who the request's user is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bbweb.mastercfg.errors import Location, argument_error, caller_location
from bbweb.mastercfg.interfaces import AuthBackend

log = logging.getLogger("bbweb.auth")

# Buildbot's documented actions, in 0.8's order.
ACTIONS: tuple[str, ...] = (
    "view", "gracefulShutdown", "forceBuild", "forceAllBuilds", "pingBuilder", "stopBuild",
    "stopAllBuilds", "cancelPendingBuild", "cancelAllPendingBuilds", "stopChange",
    "cleanShutdown", "showUsersPage", "pauseSlave",
)

AUTH = "auth"

ActionValue = bool | str | Callable[..., Any]


def _check_value(name: str, value: Any) -> ActionValue:
    """The action's value, or a config error saying what is accepted."""
    if isinstance(value, bool) or value is None:
        return bool(value)
    if value == AUTH or callable(value):
        return value
    if isinstance(value, int):  # 0/1 from old configs
        return bool(value)
    argument_error(f"Authz: {name}={value!r} is not understood: use False, True, 'auth' or a "
                   "function (username, *objects) -> bool")
    return False  # nobody, while checkconfig goes on to list the file's other mistakes


class Authz:
    """Buildbot's ``Authz(auth=…, default_action=False, view=True, forceBuild=…, …)``.

    Every action not given defaults to ``default_action`` except ``view``, which defaults
    to True on its own. Buildbot's documented ``httpLoginLink`` and 0.8's ``httpLoginUrl`` are the
    same option. An unknown keyword is a configuration error naming the line.
    """

    def __init__(self, default_action: Any = False, auth: Any = None,
                 useHttpHeader: bool = False, httpLoginUrl: Any = False,
                 view: Any = True, httpLoginLink: Any = None, **actions: Any) -> None:
        self.location: Location | None = caller_location()
        unknown = sorted(set(actions) - set(ACTIONS))
        if unknown:
            argument_error(f"Authz: unknown authorization action(s) {', '.join(unknown)}; "
                           f"the actions are {', '.join(ACTIONS)}")
        if httpLoginLink is not None:
            if httpLoginUrl not in (False, None, "") and httpLoginUrl != httpLoginLink:
                argument_error("Authz: httpLoginUrl and httpLoginLink are the same option; "
                               "give one of them")
            httpLoginUrl = httpLoginLink
        if httpLoginUrl not in (False, None, "") and not isinstance(httpLoginUrl, str):
            argument_error("Authz: httpLoginUrl must be a URL string")
            httpLoginUrl = False
        bad_auth = auth is not None and not isinstance(auth, AuthBackend)
        if bad_auth:
            argument_error(f"Authz: auth={auth!r} is not an authentication object (use "
                           "BasicAuth, HTPasswdAuth, HTPasswdAprAuth or UsersAuth)")
            auth = None
        self.auth = auth
        self.useHttpHeader = bool(useHttpHeader)
        self.httpLoginUrl: str | None = httpLoginUrl or None
        self.default_action = _check_value("default_action", default_action)
        self.actions: dict[str, ActionValue] = {}
        for name in ACTIONS:
            if name == "view":
                self.actions[name] = _check_value(name, view)
            else:
                self.actions[name] = _check_value(name, actions.get(name, default_action))
        needs_login = [n for n, v in self.actions.items() if v == AUTH or callable(v)]
        if needs_login and auth is None and not self.useHttpHeader and not bad_auth:
            where = f"{self.location}: " if self.location else ""
            log.warning("%sAuthz: %s need a logged-in user but no auth= is given, so "
                        "nobody will be allowed them", where, ", ".join(needs_login))
        if self.useHttpHeader and auth is None and not bad_auth:
            where = f"{self.location}: " if self.location else ""
            log.warning("%sAuthz(useHttpHeader=True) without auth=: the user name in the "
                        "Authorization header is trusted as it comes, so the front end "
                        "must authenticate every path (docs/security.md)", where)

    def value(self, action: str) -> ActionValue:
        """The configured value of ``action``; KeyError for a name that is not an action."""
        return self.actions[action]

    def needs_login(self, action: str) -> bool:
        """True when the action is ``'auth'`` or a callable."""
        v = self.actions[action]
        return v == AUTH or callable(v)

    def can_login(self) -> bool:
        """Whether a user can log in on this site at all (a login form or link to show)."""
        return self.auth is not None or self.useHttpHeader

    def __repr__(self) -> str:
        shown = {k: (v if not callable(v) else getattr(v, "__name__", "function"))
                 for k, v in self.actions.items()}
        return f"Authz(auth={self.auth!r}, useHttpHeader={self.useHttpHeader}, {shown})"
