"""``allowedNicks`` names NickServ accounts: on ngircd with atheme the bot asks the server
(WHOIS) who a user is identified as before it forces, stops or shuts down anything. A
listed nick that is not identified is refused, also right after logging out; the account
counts, not the nick. Without services, nicks alone count only when the configuration
says so (``allowedNicksIdentified=False``); by default nobody is let through there."""

from __future__ import annotations

import pytest

from tests.irc.conftest import start_bot
from tests.notifiers.conftest import Clock
from tests.support.history import claim
from tests.support.ircd import IrcServer, IrcUser


def nickserv(user: IrcUser, command: str, answer: str) -> None:
    """Say ``command`` to NickServ and wait for its notice containing ``answer``."""
    mark = user.mark()
    user.say("NickServ", command)
    user.wait_for(lambda ln: ln.kind == "privnotice" and ln.nick == "NickServ"
                  and answer in ln.text, 20, f"NickServ to answer {command.split()[0]}",
                  after=mark)


def pending(master) -> int:  # type: ignore[no-untyped-def]
    got = master.app().test_client().get("/json/builders/runtests").get_json()
    return int(got["pendingBuilds"])


@pytest.fixture
def services(ircd: IrcServer) -> IrcServer:
    assert ircd.services, "atheme-services is not installed (scripts/test.sh installs it)"
    return ircd


def test_listed_account_must_be_identified(make_master, daemons, services, users):
    alice, bob = users(), users()
    nickserv(alice, f"REGISTER pw-{alice.nick} {alice.nick}@bbweb.test", "registered")
    master, _d, nick = start_bot(make_master, daemons, services, alice,
                                 f", allowForce=True, allowShutdown=True, "
                                 f"allowedNicks=[{alice.nick.upper()!r}]")
    # identified (REGISTER logs in): allowed
    assert alice.ask(nick, "shutdown check") == ["Status: buildbot is running"]
    assert alice.ask(nick, "stop build runtests x") == ["sorry, no build is currently running"]
    assert pending(master) == 0
    assert alice.ask(nick, "force build runtests from an account") == [
        "The build has been queued, I'll give a shout when it starts"]
    assert pending(master) == 1

    # the same nick, logged out: refused, and nothing is forced
    nickserv(alice, "LOGOUT", "logged out")
    for command in ("force build runtests again", "stop build runtests x"):
        assert alice.ask(nick, command) == [
            f"sorry {alice.nick}, you must be identified to NickServ to control builds"]
    assert alice.ask(nick, "shutdown start") == [
        f"sorry {alice.nick}, you must be identified to NickServ to shut down the master"]
    assert alice.ask(nick, "shutdown check", target=nick) == [
        f"sorry {alice.nick}, you must be identified to NickServ to shut down the master"]
    assert pending(master) == 1

    # identified to another account: not allowed either
    nickserv(bob, f"REGISTER pw-{bob.nick} {bob.nick}@bbweb.test", "registered")
    assert bob.ask(nick, "force build runtests x", target=nick) == [
        f"sorry {bob.nick}, you are not allowed to control builds"]
    assert pending(master) == 1

    # the account counts, not the nick: bob identified as alice's account is allowed
    nickserv(bob, f"IDENTIFY {alice.nick} pw-{alice.nick}", "identified")
    assert bob.ask(nick, "shutdown check", target=nick) == ["Status: buildbot is running"]
    claimed = claim(master, "slave1", Clock()())
    assert bob.ask(nick, "stop build runtests enough", target=nick) == [
        f"build {claimed.number} interrupted"]
    page = master.app().test_client().get(
        f"/builders/runtests/builds/{claimed.number}").get_data(as_text=True)
    assert f"forced: by IRC user {alice.nick} on channel" in page
    assert f"stopped: by IRC user {bob.nick} (privmsg): enough" in page


def test_commands_given_at_once_are_each_answered(make_master, daemons, services, users):
    alice = users()
    nickserv(alice, f"REGISTER pw-{alice.nick} {alice.nick}@bbweb.test", "registered")
    _master, _d, nick = start_bot(make_master, daemons, services, alice,
                                  f", allowShutdown=True, allowedNicks=[{alice.nick!r}]")
    start = alice.mark()
    for _ in range(3):  # sent at once: the bot asks once and answers each
        alice.say(nick, "shutdown check")
    alice.wait_for(lambda _ln: len(alice.messages_from(nick, start)) >= 3, what="3 replies",
                   after=start)
    assert [m.text for m in alice.messages_from(nick, start)] == \
        ["Status: buildbot is running"] * 3


def test_without_services(make_master, daemons, tmp_path):
    """A server without NickServ never says anybody is identified: listed nicks are refused
    unless the configuration accepts bare nicks."""
    server = IrcServer(tmp_path, services=False).start()
    alice = IrcUser(server, "alice")
    try:
        alice.join()
        master, d, nick = start_bot(make_master, daemons, server, alice,
                                    ", allowForce=True, allowedNicks=['alice']")
        assert alice.ask(nick, "stop build runtests x") == [
            "sorry alice, you must be identified to NickServ to control builds"]
        assert d.stop() == 0
        master, d, nick = start_bot(make_master, daemons, server, alice,
                                    ", allowForce=True, allowedNicks=['alice'], "
                                    "allowedNicksIdentified=False", holder="d2")
        assert alice.ask(nick, "force build runtests bare nick") == [
            "The build has been queued, I'll give a shout when it starts"]
        assert pending(master) == 1
        assert d.stop() == 0
    finally:
        alice.quit()
        server.stop()
