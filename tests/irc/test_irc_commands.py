"""Every command's reply text, asked by a real IRC client in the channel and privately."""

from __future__ import annotations

import re
import time

import pytest

from bbweb import __version__
from bbweb.plugins.notifiers.irc_commands import Watches
from bbweb.status.builder import FAILURE, SUCCESS
from tests.daemon.conftest import saved_cursor
from tests.irc.conftest import start_bot
from tests.notifiers.conftest import Clock, build, change, finish_claimed, latest_event
from tests.support.history import claim, force
from tests.support.ircd import CHANNEL
from tests.support.polling import wait_for

HELP = [
    ("help", "Get help on what? (try 'help <foo>', 'help <foo> <bar>, or 'commands' for a "
             "command list)"),
    ("help frob", "no such command 'frob'"),
    ("help list", "Usage: list builders - List configured builders"),
    ("help status", "Usage: status [<which>] - List status of a builder (or all builders)"),
    ("help watch", "Usage: watch <which> - announce the completion of an active build"),
    ("help stop", "Usage: stop build <which> <reason> - Stop a running build"),
    ("help last", "Usage: last <which> - list last build status for builder <which>"),
    ("help mute", "Usage: mute - suppress all messages until a corresponding 'unmute' is "
                  "issued"),
    ("help unmute", "Usage: unmute - disable a previous 'mute'"),
    ("help commands", "Usage: commands - List available commands"),
    ("help force", "Usage: force build [--branch=branch] [--revision=revision] "
                   "[--props=prop1=val1,prop2=val2...] <which> <reason> - Force a build"),
    ("help shutdown", "Usage: shutdown check|start|stop|now - shutdown the buildbot master"),
    ("help shutdown check", "Usage: shutdown check - check if the buildbot master is running "
                            "or shutting down"),
    ("help shutdown stop", "Usage: shutdown cancel - stop the clean shutdown"),
    ("help shutdown start", "Usage: shutdown start - start a clean shutdown"),
    ("help shutdown now", "Usage: shutdown now - shutdown immediately without waiting for "
                          "the builders to finish"),
    ("help notify", "Usage: notify on|off|list [<EVENT>] ... - Notify me about build events."
                    "  event should be one or more of: 'started', 'finished', 'failure', "
                    "'success', 'exception' or 'xToY' (where x and Y are one of success, "
                    "warnings, failure, exception, but Y is capitalized)"),
    ("help source", "Usage: source - the source code for Buildbot"),
    ("help help", "Usage: help <command> [<arg> [<subarg> ...]] - Give help for <command> or "
                  "one of it's arguments"),
    ("help hello", "No usage info for 'hello'"),
    ("help dance", "No usage info for 'dance'"),
    ("help shutdown frob", "No usage info for 'shutdown' 'frob'"),
    ("help 'unclosed", "No closing quotation"),
]


@pytest.fixture
def bot(make_master, daemons, ircd, users):  # type: ignore[no-untyped-def]
    alice = users()
    master, d, nick = start_bot(make_master, daemons, ircd, alice,
                                ", allowForce=True, allowShutdown=True, useColors=False, "
                                "commandsPerMinute=60")
    return master, d, nick, alice


def test_help_texts(bot):
    _master, _d, nick, alice = bot
    for command, reply in HELP:
        assert alice.ask(nick, command) == [reply], command


def test_small_talk(bot):
    _master, _d, nick, alice = bot
    assert alice.ask(nick, "HELLO") == ["yes?"]  # commands are matched case-insensitively
    assert alice.ask(nick, "version") == [f"bbweb-{__version__} at your service"]
    assert alice.ask(nick, "source") == [
        f"My source is bbweb {__version__}, a re-creation of Buildbot 0.8's status and bot; "
        "it is where this master was installed from"]
    mark = alice.mark()
    alice.say(CHANNEL, f"{nick}: frobnicate")  # unknown: ignored
    alice.say(CHANNEL, f"{nick}: join #elsewhere")  # 0.8.9 had no join/leave: ignored
    alice.say(CHANNEL, f"{nick}: leave {CHANNEL}")
    assert alice.ask(nick, "frobnicate!") == ["What you say!"]
    assert alice.messages_from(nick, mark) and \
        [m.text for m in alice.messages_from(nick, mark)] == ["What you say!"]
    assert not [ln for ln in alice.lines[mark:] if ln.kind == "part" and ln.nick == nick]
    alice.say(CHANNEL, f"{nick}:")  # 0.8 crashed on an empty command
    alice.say(CHANNEL, f"{nick}, hello")
    alice.wait_for_text(nick, "yes?", after=mark)
    assert alice.ask(nick, "What happen ?") == ["Somebody set up us the bomb."]
    assert alice.ask(nick, "What you say !!", replies=2) == [
        "You have no chance to survive make your time.", "HA HA HA HA ...."]
    mark = alice.mark()
    alice.me(CHANNEL, f"slaps {nick}")
    line = alice.wait_for(lambda ln: ln.kind == "action" and ln.nick == nick, after=mark)
    assert line.text == f"slaps {alice.nick} too"
    mark = alice.mark()
    alice.me(CHANNEL, f"kicks {nick}")
    line = alice.wait_for(lambda ln: ln.kind == "action" and ln.nick == nick, after=mark)
    assert line.text == "kicks back"
    mark = alice.mark()
    alice.say(CHANNEL, f"{nick}: destroy")
    line = alice.wait_for(lambda ln: ln.kind == "action" and ln.nick == nick, after=mark)
    assert line.text == "readies phasers"
    mark = alice.mark()
    alice.say(CHANNEL, f"{nick}: destroy {nick}")  # not itself
    assert alice.ask(nick, "hello") == ["yes?"]
    assert [m.text for m in alice.messages_from(nick, mark)] == ["yes?"]


def test_dance_and_its_you(bot):
    """Both spread over seconds (0.8's timings); asked at once, in the channel and
    privately."""
    _master, _d, nick, alice = bot
    mark = alice.mark()
    asked = time.monotonic()
    alice.say(CHANNEL, f"{nick}: dance")
    alice.say(nick, "It's You !!")
    alice.wait_for(lambda _ln: len(alice.messages_from(nick, mark, CHANNEL)) >= 5
                   and len(alice.messages_from(nick, mark, alice.nick)) >= 3, 30,
                   "five dance moves and three answers", after=mark)
    took = time.monotonic() - asked
    assert [m.text for m in alice.messages_from(nick, mark, CHANNEL)] == [
        "<(^.^<)", "<(^.^)>", "(>^.^)>", "(7^.^)7", "(>^.^<)"]
    assert [m.text for m in alice.messages_from(nick, mark, alice.nick)] == [
        "How are you gentlemen !!", "All your base are belong to us.",
        "You are on the way to destruction."]
    assert took >= 5.0  # the last line of "It's You !!" comes 5.5 s after it


def test_mute_and_unmute(bot):
    _master, _d, nick, alice = bot
    assert alice.ask(nick, "unmute") == [
        "You hadn't told me to be quiet, but it's the thought that counts, right?"]
    assert alice.ask(nick, "mute") == ["Shutting up for now."]
    mark = alice.mark()
    alice.say(CHANNEL, f"{nick}: hello")
    assert alice.ask(nick, "unmute") == ["I'm baaaaaaaaaaack!"]
    assert [m.text for m in alice.messages_from(nick, mark)] == ["I'm baaaaaaaaaaack!"]


def test_builder_commands(bot):
    master, _d, nick, alice = bot
    clock = Clock()
    build(master, "runtests", FAILURE, clock)
    assert alice.ask(nick, "list") == ["try 'list builders'"]
    assert alice.ask(nick, "list builders") == [
        "Configured builders: docs [offline] runtests [offline]"]
    assert alice.ask(nick, "status docs runtests") == ["try 'status <builder>'"]
    assert alice.ask(nick, "last docs runtests") == ["try 'last <builder>'"]
    (last,) = alice.ask(nick, "last runtests")
    assert last.startswith("last build [runtests]: ") and last.endswith(
        " ago: failed compile")
    assert alice.ask(nick, "watch") == ["try 'watch <builder>'"]
    assert alice.ask(nick, "watch runtests") == ["there are no builds currently running"]
    force(master, "runtests")
    claimed = claim(master, "slave1", clock())
    (status,) = alice.ask(nick, "status runtests")
    assert status.startswith("runtests: building(")
    assert alice.ask(nick, "watch runtests") == [
        f"watching build runtests #{claimed.number} until it finishes.."]
    mark = alice.mark()
    finish_claimed(master, claimed.buildid, SUCCESS, clock)
    alice.wait_for_text(nick, f"Hey! build runtests #{claimed.number} is complete: Success "
                              "[build successful]", after=mark)
    alice.wait_for_text(nick, "Build details are at http://bb.example.org/builders/runtests/"
                              f"builds/{claimed.number}", after=mark)


def test_watch_of_a_build_that_ends_meanwhile(bot, monkeypatch):
    """The build ends after ``watch`` saw it running and its end is handled by the
    notifier before the watch is noted: the command itself says it ended."""
    master, _d, nick, alice = bot
    clock = Clock()
    force(master, "runtests")
    claimed = claim(master, "slave1", clock())
    real = Watches.watch_build

    def ends_first(self, buildid, contact):  # type: ignore[no-untyped-def]
        finish_claimed(master, buildid, SUCCESS, clock)
        last = latest_event(master)
        wait_for(lambda: (saved_cursor(master, "notifier.irc") or 0) >= last,
                 what="the notifier to handle the build's end")
        return real(self, buildid, contact)
    monkeypatch.setattr(Watches, "watch_build", ends_first)
    mark = alice.mark()
    alice.say(CHANNEL, f"{nick}: watch runtests")
    n = claimed.number
    alice.wait_for_text(nick, f"Hey! build runtests #{n} is complete: Success "
                              "[build successful]", after=mark)
    alice.wait_for_text(nick, "Build details are at http://bb.example.org/builders/runtests/"
                              f"builds/{n}", after=mark)
    assert [m.text for m in alice.messages_from(nick, mark)][0] == \
        f"watching build runtests #{n} until it finishes.."


LEFT = r"(4\dm\d\ds|50m00s)"  # 3000 s less the few seconds since the build started


def test_eta_in_forced_status_and_watch(bot):
    """With a successful build of 50 minutes before, a running build has an ETA."""
    master, _d, nick, alice = bot
    clock = Clock(time.time() - 4 * 3600)
    force(master, "runtests")
    first = claim(master, "slave1", clock())
    finish_claimed(master, first.buildid, SUCCESS, lambda: clock(600))  # type: ignore
    times = master.app().test_client().get(
        f"/json/builders/runtests/builds/{first.number}").get_json()["times"]
    assert times[1] - times[0] == 3000
    mark = alice.mark()
    alice.say(CHANNEL, f"{nick}: force build runtests with eta")
    wait_for(lambda: master.app().test_client().get("/json/builders/runtests").get_json()[
        "pendingBuilds"] == 1, what="the forced request")
    second = claim(master, "slave1", time.time())
    alice.wait_for_text(nick, re.compile(rf"^build forced \[ETA {LEFT}\]$"), after=mark)
    alice.wait_for_text(nick, "I'll give a shout when the build finishes", after=mark)
    (status,) = alice.ask(nick, "status runtests")
    assert re.fullmatch(rf"runtests: building\(no current step\) \[ETA {LEFT}\]", status), status
    (watch,) = alice.ask(nick, "watch runtests")
    assert re.fullmatch(rf"watching build runtests #{second.number} until it finishes "
                        rf"\[{LEFT}\]\.\.", watch), watch


def test_builds_described_by_revisions(make_master, daemons, ircd, users):
    """useRevisions: watch, stop and the watched end name the build by its changes'
    revisions (7 characters) instead of its number."""
    alice = users()
    master, _d, nick = start_bot(
        make_master, daemons, ircd, alice, ", allowForce=True, useRevisions=True, "
        "useColors=False",
        extra_cfg="c['schedulers'] = [AnyBranchScheduler(name='all', "
                  "builderNames=['runtests'])]")
    clock = Clock()
    change(master, clock, revision="1234567890ab")
    claimed = claim(master, "slave1", clock())
    assert alice.ask(nick, "watch runtests") == [
        "watching build runtests containing revision(s) [1234567] until it finishes.."]
    assert alice.ask(nick, "stop build runtests enough") == [
        "build containing revision(s) [1234567] interrupted"]
    mark = alice.mark()
    finish_claimed(master, claimed.buildid, SUCCESS, clock)  # the worker stops it
    alice.wait_for_text(nick, "Hey! build runtests containing revision(s) [1234567] is "
                              "complete: Exception [exception interrupted]", after=mark)


def test_notify_settings(bot):
    _master, _d, nick, alice = bot
    assert alice.ask(nick, "notify") == ["try 'notify on|off|list <EVENT>'"]
    assert alice.ask(nick, "notify list") == ["The following events are being notified: []"]
    assert alice.ask(nick, "notify on") == [
        "The following events are being notified: ['finished', 'started']"]
    assert alice.ask(nick, "notify on failureToSuccess warnings") == [
        "The following events are being notified: ['failureToSuccess', 'finished', "
        "'started', 'warnings']"]
    assert alice.ask(nick, "notify off started nosuch finished") == [
        "try 'notify on|off <EVENT>'"]
    assert alice.ask(nick, "notify list") == [
        "The following events are being notified: ['failureToSuccess', 'finished', "
        "'warnings']"]
    assert alice.ask(nick, "notify off retry") == ["try 'notify on|off <EVENT>'"]
    assert alice.ask(nick, "notify off") == ["The following events are being notified: []"]
    # privately: the settings are the nick's own
    assert alice.ask(nick, "notify on success", target=nick) == [
        "The following events are being notified: ['success']"]
    assert alice.ask(nick, "notify list") == ["The following events are being notified: []"]


def test_force_and_stop(bot):
    master, _d, nick, alice = bot
    assert alice.ask(nick, "force") == [
        "try 'force build [--branch=BRANCH] [--revision=REVISION] "
        "[--props=PROP1=VAL1,PROP2=VAL2...]  <WHICH> <REASON>'"]
    assert alice.ask(nick, "force build") == [
        "you must provide a Builder, force build [--branch=BRANCH] [--revision=REVISION] "
        "[--props=PROP1=VAL1,PROP2=VAL2...]  <WHICH> <REASON>"]
    assert alice.ask(nick, "force build --builder=docs runtests") == [
        "--builder provided in two ways"]
    assert alice.ask(nick, "force build --reason=x runtests because") == [
        "--reason provided in two ways"]
    assert alice.ask(nick, "force build --branch=a;b runtests") == ["sorry, bad branch 'a;b'"]
    assert alice.ask(nick, "force build --revision=a$b runtests") == [
        "sorry, bad revision 'a$b'"]
    assert alice.ask(nick, "force build '--props=a=b c' runtests") == [
        "sorry, bad property name='a', value='b c'"]
    assert alice.ask(nick, "force build --props=novalue runtests") == [
        "sorry, property 'novalue' has no value (write --props=name=value,...)"]
    assert alice.ask(nick, "force build nosuch x") == ["no such builder 'nosuch'"]
    assert alice.ask(nick, "stop build runtests") == ["try 'stop build WHICH <REASON>'"]
    assert alice.ask(nick, "stop build runtests enough") == [
        "sorry, no build is currently running"]

    mark = alice.mark()
    alice.say(CHANNEL, f"{nick}: force build --branch=main --revision=abc123 "
                       "--props=color=red,size=2 runtests because I can")
    alice.wait_for_text(nick, "The build has been queued, I'll give a shout when it starts",
                        after=mark, timeout=30)
    claimed = claim(master, "slave1", Clock()())
    alice.wait_for_text(nick, f"build #{claimed.number} forced", after=mark)
    alice.wait_for_text(nick, "I'll give a shout when the build finishes", after=mark)
    page = master.app().test_client().get(
        f"/builders/runtests/builds/{claimed.number}").get_data(as_text=True)
    assert f"forced: by IRC user {alice.nick} on channel {CHANNEL}: because I can" in page
    b = master.app().test_client().get(
        f"/json/builders/runtests/builds/{claimed.number}").get_json()
    props = {name: (value, source) for name, value, source in b["properties"]}
    assert props["color"] == ("red", "Force Build IRC")
    assert props["owner"] == (f"IRC user {alice.nick} on channel {CHANNEL}",
                              "Force Build IRC")
    assert b["sourceStamps"][0]["branch"] == "main"
    assert b["sourceStamps"][0]["revision"] == "abc123"

    assert alice.ask(nick, "stop build runtests 'too slow'") == [
        f"build {claimed.number} interrupted"]
    b = master.app().test_client().get(
        f"/json/builders/runtests/builds/{claimed.number}").get_json()
    page = master.app().test_client().get(
        f"/builders/runtests/builds/{claimed.number}").get_data(as_text=True)
    assert f"stopped: by IRC user {alice.nick} on channel {CHANNEL}: too slow" in page


def test_allow_list_of_bare_nicks(make_master, daemons, ircd, users):
    """allowedNicksIdentified=False: the nick alone counts (accounts: test_irc_accounts)."""
    alice, bob = users(), users()
    master, _d, nick = start_bot(make_master, daemons, ircd, alice,
                                 f", allowForce=True, allowShutdown=True, "
                                 f"allowedNicks=[{alice.nick!r}], allowedNicksIdentified=False")
    force(master, "runtests")  # a running build keeps a clean shutdown waiting
    claim(master, "slave1", Clock()())
    # bob asks privately: in the channel his replies could reach alice after her next
    # question
    assert bob.ask(nick, "force build runtests x", target=nick) == [
        f"sorry {bob.nick}, you are not allowed to control builds"]
    assert bob.ask(nick, "shutdown check", target=nick) == [
        f"sorry {bob.nick}, you are not allowed to shut down the master"]
    assert alice.ask(nick, "shutdown check") == ["Status: buildbot is running"]
    assert alice.ask(nick, "shutdown stop") == ["Nothing to stop"]
    assert alice.ask(nick, "shutdown start") == ["Starting clean shutdown"]
    assert alice.ask(nick, "shutdown check") == ["Status: buildbot is shutting down"]
    assert alice.ask(nick, "shutdown start") == ["Already started"]
    assert alice.ask(nick, "shutdown stop") == ["Stopping clean shutdown"]
    assert alice.ask(nick, "shutdown frob") == ["try 'shutdown check|start|stop|now'"]


def test_shutdown_now(bot):
    """``shutdown now`` stops the running builds (as the IRC user) and shuts the master
    down cleanly: the daemon ends once they have ended, and the bot quits."""
    master, d, nick, alice = bot
    clock = Clock()
    force(master, "runtests")
    claimed = claim(master, "slave1", clock())
    assert alice.ask(nick, "shutdown now") == ["Stopping buildbot"]
    page = master.app().test_client().get(
        f"/builders/runtests/builds/{claimed.number}").get_data(as_text=True)
    assert f"IRC user {alice.nick} on channel {CHANNEL}" in page
    mark = alice.mark()
    finish_claimed(master, claimed.buildid, FAILURE, clock)  # the worker's answer
    assert d.join(30) == 0
    quit_line = alice.wait_for(lambda ln: ln.kind == "quit" and ln.nick == nick, after=mark,
                               what="the bot to quit")
    assert quit_line.text == '"buildmaster reconfigured: bot disconnecting"'  # ngircd quotes


def test_disabled_control(make_master, daemons, ircd, users):
    alice = users()
    _master, _d, nick = start_bot(make_master, daemons, ircd, alice)
    assert alice.ask(nick, "force build runtests x") == ["builder control is not enabled"]
    assert alice.ask(nick, "stop build runtests x") == ["builder control is not enabled"]
    assert alice.ask(nick, "shutdown check") == ["shutdown control is not enabled"]
    assert alice.ask(nick, "shutdown frob") == ["try 'shutdown check|start|stop|now'"]


def test_commands_per_minute(make_master, daemons, ircd, users):
    alice = users()
    _master, _d, nick = start_bot(make_master, daemons, ircd, alice,
                                  ", commandsPerMinute=3")
    for _ in range(3):
        assert alice.ask(nick, "hello") == ["yes?"]
    assert alice.ask(nick, "hello") == [f"{alice.nick}: too many commands; wait a minute"]
    bob = users(join=False)
    assert bob.ask(nick, "hello", target=nick) == ["yes?"]
