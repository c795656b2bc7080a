"""The bot's connection: an IRC server killed and restarted, a daemon killed with SIGKILL,
two daemons for one master, TLS with and without a trusted certificate, NickServ, and a
nick that is taken."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bbweb.status.builder import FAILURE, SUCCESS
from tests.daemon.conftest import FAST
from tests.irc.conftest import IRC_CFG, bot_nick, irc_cfg, start_bot
from tests.notifiers.conftest import Clock, attempts, build
from tests.support.ircd import CHANNEL, IrcServer, IrcUser
from tests.support.polling import wait_for
from tests.support.smtpd import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_ircd(tmp_path):  # type: ignore[no-untyped-def]
    """A server of this test's own, to kill and start again on the same port."""
    server = IrcServer(tmp_path, services=False).start()
    yield server
    server.stop()


def joins(user: IrcUser, nick: str, after: int = 0) -> list[str]:
    return [ln.nick for ln in user.lines[after:] if ln.kind == "join" and
            ln.nick.startswith(nick)]


def test_server_restart_reconnects_and_announces_what_was_missed_once(
        make_master, daemons, own_ircd):
    lost_delay = 5.0
    alice = IrcUser(own_ircd, "alice")
    alice.join()
    master, d, nick = start_bot(
        make_master, daemons, own_ircd, alice,
        f", notify_events=['finished'], useColors=False, lostDelay={lost_delay}, "
        "backlogLines=2")
    clock = Clock()
    mark = alice.mark()
    build(master, "runtests", FAILURE, clock)
    alice.wait_for_text(nick, re.compile(r"^build #0 of runtests is complete"), after=mark)
    alice.quit()

    own_ircd.kill()
    killed = time.monotonic()
    for result in (SUCCESS, FAILURE, SUCCESS, FAILURE, SUCCESS):  # builds #1-#5
        build(master, "runtests", result, clock)
    own_ircd.start()
    alice = IrcUser(own_ircd, "alice")
    alice.join()
    alice.wait_for(lambda ln: ln.kind == "join" and ln.nick == nick, lost_delay + 10,
                   "the bot to come back")
    assert time.monotonic() - killed < lost_delay + 10
    summary = ("... and 3 more builds finished while I was disconnected; see "
               "http://bb.example.org/waterfall")
    alice.wait_for_text(nick, summary)
    got = [m.text for m in alice.messages_from(nick)]
    assert [t[:40] for t in got[:2]] == [
        "build #1 of runtests is complete: Succes",
        "build #2 of runtests is complete: Failur"]
    assert got[2:] == [summary]
    build(master, "runtests", SUCCESS, clock)  # #6, announced as it happens
    alice.wait_for_text(nick, re.compile(r"^build #6 of runtests is complete"))
    assert len(alice.messages_from(nick)) == 4  # nothing said twice
    wait_for(lambda: [r.build_number for r in attempts(master, "irc")
                      if r.outcome == "sent"] == [0, 1, 2, 3, 6],
             what="every announcement recorded as sent")
    rows = attempts(master, "irc")
    assert [r.build_number for r in rows if r.outcome == "skipped"] == [4, 5]
    alice.quit()
    assert d.stop() == 0


def test_a_silent_server_is_noticed_and_reconnected_to(make_master, daemons, own_ircd,
                                                      caplog):
    """ngircd stopped (SIGSTOP): the connection stays open but nothing comes back. After
    two keepalive periods (and 5 s of grace) the bot gives up on it and connects again;
    once the server runs again it is back in the channel."""
    alice = IrcUser(own_ircd, "alice")
    alice.join()
    assert own_ircd.proc is not None
    with caplog.at_level(logging.INFO, logger="bbweb.notifiers.irc"):
        _master, d, nick = start_bot(make_master, daemons, own_ircd, alice, ", keepalive=1")
        mark = alice.mark()
        own_ircd.proc.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            wait_for(lambda: "nothing heard from the server" in caplog.text, 30,
                     "the bot to notice that the server went silent")
            noticed = time.monotonic() - stopped
        finally:
            own_ircd.proc.send_signal(signal.SIGCONT)
    assert 5.0 <= noticed < 15.0  # 2 x 1 s + 5 s after the last line the server sent
    back = alice.wait_for(lambda ln: ln.kind == "join" and ln.nick.startswith(nick), 30,
                          "the bot back in the channel", after=mark)
    assert alice.ask(back.nick, "hello") == ["yes?"]
    alice.quit()
    assert d.stop() == 0


def test_failed_attempts_back_off(make_master, daemons, caplog):
    """Nothing listens: each failed attempt doubles the wait, up to 8 x failedDelay."""
    port = free_port()
    cfg = IRC_CFG + textwrap.dedent(f"""
        c['status'].append(words.IRC('127.0.0.1', 'nobody', ['#bb'], port={port},
                                     failedDelay=0.5))
    """)
    master = make_master(cfg)
    with caplog.at_level(logging.WARNING, logger="bbweb.notifiers.irc"):
        d = daemons(master.basedir, holder="d")

        def attempts() -> list[logging.LogRecord]:
            return [r for r in caplog.records
                    if r.getMessage().startswith(f"IRC: cannot connect to 127.0.0.1:{port}")]
        wait_for(lambda: len(attempts()) >= 5, 30, "five failed attempts")
        found = attempts()[:5]
    assert d.stop() == 0
    delays = [float(re.search(r"trying again in ([\d.]+)s", r.getMessage()).group(1))
              for r in found]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]
    gaps = [b.created - a.created for a, b in zip(found[:-1], found[1:], strict=True)]
    assert all(gap >= delay * 0.9 for gap, delay in zip(gaps, delays[:-1], strict=True)), gaps


CRASHABLE = """
import sys
from bbweb.daemon import run_daemon
sys.exit(run_daemon({basedir!r}, holder={holder!r}, **{fast!r}))
"""


def test_sigkill_of_the_daemon_keeps_subscriptions(make_master, ircd, users, tmp_path):
    alice = users()
    nick = bot_nick()
    master = make_master(irc_cfg(ircd, nick, ", useColors=False"))
    env = {**os.environ,
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def spawn(holder: str) -> subprocess.Popen:
        script = tmp_path / f"{holder}.py"
        script.write_text(CRASHABLE.format(basedir=str(master.basedir), holder=holder,
                                           fast=FAST))
        return subprocess.Popen([sys.executable, str(script)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    first = spawn("first")
    try:
        alice.wait_for(lambda ln: ln.kind == "join" and ln.nick == nick, 30, "the bot")
        assert alice.ask(nick, "notify on failure") == [
            "The following events are being notified: ['failure']"]
        assert alice.ask(nick, "notify on success", target=nick) == [
            "The following events are being notified: ['success']"]
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
    mark = alice.mark()
    second = spawn("second")
    try:
        alice.wait_for(lambda ln: ln.kind == "join" and ln.nick == nick, 60,
                       "the bot to come back with the new daemon", after=mark)
        assert alice.ask(nick, "notify list") == [
            "The following events are being notified: ['failure']"]
        clock = Clock()
        build(master, "runtests", FAILURE, clock)
        build(master, "runtests", SUCCESS, clock)
        alice.wait_for_text(nick, re.compile(r"^build #0 of runtests is complete: Failure"),
                            after=mark, target=CHANNEL)
        alice.wait_for_text(nick, re.compile(r"^build #1 of runtests is complete: Success"),
                            after=mark, target=alice.nick)
        assert not [m for m in alice.messages_from(nick, mark, CHANNEL) if "#1" in m.text]
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(30)


def test_only_the_daemon_holding_the_lock_runs_the_bot(make_master, daemons, ircd, users):
    alice = users()
    master, first, nick = start_bot(make_master, daemons, ircd, alice, holder="first")
    second = daemons(master.basedir, holder="second")
    assert alice.ask(nick, "hello") == ["yes?"]
    assert first.stop() == 0
    mark = alice.mark()
    alice.wait_for(lambda ln: ln.kind == "join" and ln.nick == nick, 30,
                   "the standby daemon's bot", after=mark)
    assert alice.ask(nick, "hello") == ["yes?"]
    assert joins(alice, nick) == [nick, nick]  # never two bots, never a second nick
    assert second.stop() == 0


def test_tls_with_a_trusted_certificate(make_master, daemons, ircd, users):
    alice = users()
    nick = bot_nick()
    cfg = irc_cfg(ircd, nick, f", useSSL=True, sslCAFile={str(ircd.cert)!r}").replace(
        f"port={ircd.port},", f"port={ircd.tls_port},")
    master = make_master(cfg)
    d = daemons(master.basedir, holder="d")
    alice.wait_for(lambda ln: ln.kind == "join" and ln.nick == nick, 30, "the TLS bot")
    assert alice.ask(nick, "hello") == ["yes?"]
    assert d.stop() == 0


def test_tls_refuses_an_untrusted_certificate(make_master, daemons, ircd, users, caplog):
    nick = bot_nick()
    cfg = irc_cfg(ircd, nick, ", useSSL=True").replace(f"port={ircd.port},",
                                                      f"port={ircd.tls_port},")
    master = make_master(cfg)
    with caplog.at_level(logging.WARNING, logger="bbweb.notifiers.irc"):
        d = daemons(master.basedir, holder="d")
        wait_for(lambda: "CERTIFICATE_VERIFY_FAILED" in caplog.text, 30,
                 "the bot to refuse the server's certificate")
    assert f"cannot connect to 127.0.0.1:{ircd.tls_port}" in caplog.text
    assert d.stop() == 0


def test_nickserv_identify_and_a_nick_in_use(make_master, daemons, ircd, users, caplog):
    if not ircd.services:
        pytest.skip("atheme-services is not installed")
    nick = bot_nick()
    owner = users(nick, join=False)
    owner.say("NickServ", f"REGISTER botpw-{nick} {nick}@bbweb.test")
    owner.wait_for(lambda ln: ln.kind == "privnotice" and "registered" in ln.text,
                   what="NickServ to register the nick")
    alice = users()
    with caplog.at_level(logging.INFO, logger="bbweb.notifiers.irc"):
        # the nick is still taken by its owner: the bot takes nick_
        master = make_master(irc_cfg(ircd, nick, f", password='botpw-{nick}'"))
        d = daemons(master.basedir, holder="d")
        alice.wait_for(lambda ln: ln.kind == "join" and ln.nick == nick + "_", 30,
                       "the bot under its alternative nick")
        assert alice.ask(nick + "_", "hello") == ["yes?"]
        assert d.stop() == 0
        owner.quit()
        d = daemons(master.basedir, holder="d2")
        alice.wait_for(lambda ln: ln.kind == "join" and ln.nick == nick, 30, "the bot")
        wait_for(lambda: "You are now identified" in caplog.text, 30,
                 "NickServ to identify the bot")
        assert d.stop() == 0
