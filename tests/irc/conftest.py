"""IRC test helpers: one real ngircd (with NickServ when atheme is installed) for the
session, real ``irc`` clients, and masters whose daemon runs the bot."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.daemon.conftest import daemons, saved_cursor  # noqa: F401 (the fixture)
from tests.notifiers.conftest import MAIL_CFG
from tests.support.ircd import CHANNEL, CHANNEL_KEY, IrcServer, IrcUser, have_ngircd
from tests.support.polling import wait_for

IRC_CFG = MAIL_CFG.replace("from bbweb.status.mail import MailNotifier",
                           "from bbweb.status import words")


@pytest.fixture(scope="session")
def ircd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrcServer]:
    assert have_ngircd(), "ngircd is not installed (scripts/test.sh installs it)"
    server = IrcServer(tmp_path_factory.mktemp("ircd")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def users(ircd: IrcServer) -> Iterator[Callable[..., IrcUser]]:
    """``users(nick, join=True)``: a person on the server (in #bb unless join=False);
    every one quits at the end of the test."""
    made: list[IrcUser] = []

    def factory(nick: str | None = None, join: bool = True, **kw: Any) -> IrcUser:
        user = IrcUser(ircd, nick or "u" + uuid.uuid4().hex[:8], **kw)
        made.append(user)
        if join:
            user.join()
        return user

    yield factory
    for user in made:
        user.quit()


def bot_nick() -> str:
    return "bot" + uuid.uuid4().hex[:8]


def irc_cfg(ircd: IrcServer, nick: str, extra_args: str = "", extra_cfg: str = "") -> str:
    """IRC_CFG with a bot in the keyed #bb (fast reconnects, no colours unless asked)."""
    if "lostDelay" not in extra_args:
        extra_args = ", lostDelay=0.2" + extra_args
    return IRC_CFG + textwrap.dedent(f"""
        {extra_cfg}
        c['status'].append(words.IRC('127.0.0.1', {nick!r},
            [{{'channel': {CHANNEL!r}, 'password': {CHANNEL_KEY!r}}}],
            port={ircd.port}, failedDelay=0.2{extra_args}))
    """)


def start_bot(make_master: Any, start_daemon: Any, ircd: IrcServer, watcher: IrcUser,
              extra_args: str = "", extra_cfg: str = "", holder: str = "d",
              nick: str | None = None) -> tuple[Any, Any, str]:
    """A master whose daemon runs a bot; returns (master, daemon, bot nick) once the bot
    joined #bb (``watcher`` sees it) and follows the event stream."""
    nick = nick or bot_nick()
    master = make_master(irc_cfg(ircd, nick, extra_args, extra_cfg))
    d = start_daemon(master.basedir, holder=holder)
    watcher.wait_for(lambda ln: ln.kind == "join" and ln.nick == nick, 30,
                     f"the bot {nick} joining {CHANNEL}")
    wait_for(lambda: saved_cursor(master, "notifier.irc") is not None,
             what="the bot to take its place in the event stream")
    return master, d, nick
