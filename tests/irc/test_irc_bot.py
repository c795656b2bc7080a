"""The bot on a real IRC server, run by the master daemon: it joins the keyed channel,
announces builds the engine runs, and answers commands in the channel and privately."""

from __future__ import annotations

import re

from bbweb.status.builder import FAILURE
from tests.irc.conftest import start_bot
from tests.notifiers.conftest import Clock, attempts, build
from tests.support.ircd import CHANNEL
from tests.support.polling import wait_for


def test_announces_finished_builds_in_the_channel(make_master, daemons, ircd, users):
    alice = users("alice" + ircd.tls_port.__str__()[-3:])
    master, d, bot = start_bot(make_master, daemons, ircd, alice,
                               ", notify_events={'finished': 1}, useColors=False")
    clock = Clock()
    mark = alice.mark()
    build(master, "runtests", FAILURE, clock)
    line = alice.wait_for_text(bot, re.compile("is complete"), after=mark, target=CHANNEL)
    assert line.text == ("build #0 of runtests is complete: Failure [failed compile]  "
                         "Build details are at http://bb.example.org/builders/runtests/"
                         "builds/0")
    # the line can arrive before the attempt's row says "sent"
    wait_for(lambda: [(r.outcome, r.recipients) for r in attempts(master, "irc")]
             == [("sent", '["#bb"]')], what="the attempt recorded as sent")
    assert d.stop() == 0


def test_commands_in_the_channel_and_privately(make_master, daemons, ircd, users):
    alice = users()
    master, d, bot = start_bot(make_master, daemons, ircd, alice)
    assert alice.ask(bot, "hello") == ["yes?"]
    assert alice.ask(bot, "hello", target=bot) == ["yes?"]
    assert alice.ask(bot, "commands") == [
        "buildbot commands: commands, dance, destroy, force, hello, help, last, list, mute, "
        "notify, shutdown, source, status, stop, unmute, version, watch"]
    assert alice.ask(bot, "list builders") == [
        "Configured builders: docs [offline] runtests [offline]"]
    assert alice.ask(bot, "status", replies=2) == ["docs: offline", "runtests: offline"]
    assert alice.ask(bot, "last runtests") == [
        "last build [runtests]: (no builds run since last restart)"]
    assert alice.ask(bot, "status nosuch") == ["no such builder 'nosuch'"]
    assert alice.ask(bot, "force build runtests now") == ["builder control is not enabled"]
    assert d.stop() == 0
