"""Clean shutdown of the master (the root page's "Clean Shutdown" button).

While one is pending the web grants no claim, so no build starts; the daemon checks at
each liveness interval whether anything is still running and, once nothing is, stops
(exit code 0) — ``bbweb start`` then stops its web server and local worker too. A daemon
that starts afresh forgets a clean shutdown that is still recorded: the shutdown it asked
for has happened.
"""

from __future__ import annotations

import logging

from bbweb.db.connection import Database
from bbweb.engine import actions

log = logging.getLogger("bbweb.daemon")


def clean_shutdown_due(db: Database) -> bool:
    """A clean shutdown is pending and no build is running."""
    with db.read() as conn:
        return actions.clean_shutdown_due(conn)


def forget_clean_shutdown(db: Database) -> None:
    """At daemon start: a recorded clean shutdown is over."""
    with db.write() as conn:
        if actions.cancel_clean_shutdown(conn, "the daemon (restarted)"):
            log.info("the clean shutdown asked before this start is over; builds may start")
