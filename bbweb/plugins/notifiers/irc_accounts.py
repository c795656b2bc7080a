"""Which NickServ account a nick is identified as, asked of the IRC server with WHOIS.

On IRC a nick proves nothing: whoever connects first may use any free nick, so an
allow-list of nicks alone lets anybody force builds while the person named is away.
Networks with services (NickServ) let users identify to an account, and the server's
WHOIS answer then carries numeric 330 ("<nick> <account> :is logged in as"), as ngircd
with atheme, Libera's and OFTC's servers do. The bot asks just before it acts on a
``force``, ``stop`` or ``shutdown`` from a nick and acts only on the answer: nothing is
remembered between commands, so a user who logs out (or a nick taken over by somebody
else) is refused at once.

Everything here runs on the bot's connection thread (the command handlers, the WHOIS
replies and the timers all do), so no locks are needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import irc.strings

if TYPE_CHECKING:
    from bbweb.plugins.notifiers.irc_client import BotConnection

WHOIS_TIMEOUT = 10.0  # seconds the server has to finish its WHOIS answer

# account (None: not identified), answered (False: no complete WHOIS answer in time)
Decided = Callable[[str | None, bool], None]


@dataclass
class _Lookup:
    connection: int
    started: float
    account: str | None = None
    waiters: list[Decided] = field(default_factory=list)


class AccountLookups:
    """WHOIS questions in flight, one per nick; every command waiting on a nick gets the
    same answer."""

    def __init__(self, timeout: float = WHOIS_TIMEOUT) -> None:
        self.timeout = timeout
        self._pending: dict[str, _Lookup] = {}

    def lookup(self, bot: BotConnection, nick: str, then: Decided) -> None:
        """Ask the server who ``nick`` is logged in as; ``then(account, answered)`` runs
        on the connection thread when it said so (or after ``timeout`` seconds without a
        complete answer: ``then(None, False)``)."""
        key = irc.strings.lower(nick)
        now = time.monotonic()
        found = self._pending.get(key)
        if found is not None and (found.connection != bot.connections
                                  or now - found.started > self.timeout):
            del self._pending[key]  # asked on a lost connection, or never answered
            found = None
        if found is not None:
            found.waiters.append(then)
            return
        entry = self._pending[key] = _Lookup(bot.connections, now, waiters=[then])
        bot.whois(nick)
        bot.call_later(self.timeout, lambda: self._expire(key, entry))

    def _expire(self, key: str, entry: _Lookup) -> None:
        if self._pending.get(key) is entry:
            del self._pending[key]
            for then in entry.waiters:
                then(None, False)

    def on_whoisaccount(self, bot: BotConnection, event: Any) -> None:
        """330 ``<nick> <account> :is logged in as``."""
        if len(event.arguments) >= 2:
            entry = self._pending.get(irc.strings.lower(event.arguments[0]))
            if entry is not None:
                entry.account = event.arguments[1]

    def on_endofwhois(self, bot: BotConnection, event: Any) -> None:
        """318 ends every WHOIS answer, also the one for a nick that is not online
        (401 before it)."""
        if not event.arguments:
            return
        entry = self._pending.pop(irc.strings.lower(event.arguments[0]), None)
        if entry is not None:
            for then in entry.waiters:
                then(entry.account, True)
