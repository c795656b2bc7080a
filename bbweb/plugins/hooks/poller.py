"""The ``poller`` dialect: "knock on the door" — make polling change sources poll now.

``/change_hook/poller?poller=URL`` (repeatable; GET, as Buildbot's documented commit-hook example
does, or POST) asks for an immediate poll of the change source named ``URL`` (a
``GitPoller``'s ``repourl``, an ``SVNPoller``'s ``svnurl``, or the ``name=`` it was
given); without ``poller`` every allowed poller polls. The option ``allowed=[names]``
restricts which pollers the hook may trigger. A name that is not an allowed, configured
poller is a 400 ``Could not find pollers: a,b`` and nothing polls.

The web process never polls: it records a ``poller.poll_requested`` event naming the
pollers, which the master daemon picks up within a fraction of a second
(:mod:`bbweb.daemon.pollers`); changes the poll finds appear as usual. The answer is
Buildbot 0.8's 200 ``no changes found`` followed by the pollers that were asked.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Request, g

from bbweb.changes import redact_url
from bbweb.engine.changes import ChangeInput
from bbweb.engine.poll_requests import request_polls
from bbweb.mastercfg.interfaces import pollers_of
from bbweb.mastercfg.master import MasterConfig
from bbweb.plugins.site import site

log = logging.getLogger("bbweb.change_hook.poller")

MAX_NAMES_SHOWN = 5
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def _shown(name: str) -> str:
    """A requested name as it may appear in an answer: printable ASCII, bounded."""
    text = _UNPRINTABLE.sub("?", name)
    return text if len(text) <= 100 else text[:99] + "…"


class PollerHook:
    """``change_hook_dialects={'poller': True}`` or ``{'poller': {'allowed': [...]}}``."""

    src: str | None = None
    allow_get = True  # Buildbot's documentation triggers polls with GET (curl from a commit hook)
    request_properties = False

    def __init__(self, options: dict[str, Any], config: MasterConfig) -> None:
        self.options = options
        self.config = config
        allowed = options.get("allowed") if isinstance(options, dict) else None
        if isinstance(allowed, str):
            allowed = [allowed]
        if allowed is not None and not (isinstance(allowed, list | tuple | set) and
                                        all(isinstance(n, str) for n in allowed)):
            raise ValueError("the poller dialect's 'allowed' option must be a list of "
                             "poller names (their repourl/svnurl)")
        self.allowed: frozenset[str] | None = \
            frozenset(allowed) if allowed is not None else None
        if self.allowed is not None:
            unknown = sorted(self.allowed - {p.name for p in pollers_of(config.change_sources)})
            if unknown:
                log.warning("the poller dialect allows %s, which %s no configured poller",
                            ", ".join(repr(redact_url(n)) for n in unknown),
                            "is" if len(unknown) == 1 else "are")

    def candidates(self) -> list[str]:
        """The names of the pollers this hook may trigger, in configuration order."""
        return [p.name for p in pollers_of(self.config.change_sources)
                if self.allowed is None or p.name in self.allowed]

    def get_changes(self, request: Request) -> list[ChangeInput]:
        if request.method == "HEAD":  # no side effects for a HEAD request
            return []
        candidates = self.candidates()
        asked = list(dict.fromkeys(request.values.getlist("poller")))
        if asked:
            missing = [n for n in asked if n not in candidates]
            if missing:
                shown = ",".join(_shown(n) for n in missing[:MAX_NAMES_SHOWN])
                more = len(missing) - MAX_NAMES_SHOWN
                raise ValueError(f"Could not find pollers: {shown}"
                                 + (f" (and {more} more)" if more > 0 else ""))
            names = asked
        else:
            names = candidates
        if not names:
            g.change_hook_note = "there are no pollers to poll"
            return []
        with site().db.write() as conn:
            event_id = request_polls(conn, names)
        log.info("poll requested for %s (event %d)", ", ".join(map(redact_url, names)),
                 event_id)
        g.change_hook_note = "poll requested for " + ", ".join(_shown(n) for n in names)
        return []
