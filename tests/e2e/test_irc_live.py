"""The IRC bot end to end on real processes: ``bbweb master`` runs the bot on a real
ngircd, a real worker runs the builds. ``force build`` from the channel creates a real
build whose owner and reason show on its page, ``stop build`` kills its sleeping step, and
the channel hears about both."""

from __future__ import annotations

import os
import re

import pytest
import requests

from tests.e2e.conftest import start_live_master, stop_live_master, wait_for
from tests.support.ircd import CHANNEL, CHANNEL_KEY, IrcServer, IrcUser

CFG = r"""
from bbweb.config import *
from bbweb.status import words
c = BuildmasterConfig = {}
c['buildbotURL'] = 'http://127.0.0.1:PORT/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('w1', 'pw1', keepalive_interval=1)]
sleepy = BuildFactory([ShellCommand(name='sleep', command=Interpolate(
    'echo $$ > %(prop:pidfile)s; exec sleep 300'))])
quick = BuildFactory([ShellCommand(name='say', command=Interpolate(
    'echo "colour=%(prop:colour)s"'))])
flaky = BuildFactory([ShellCommand(name='check', command=Interpolate('exit %(prop:rc)s'))])
c['builders'] = [BuilderConfig(name='quick', slavenames=['w1'], factory=quick),
                 BuilderConfig(name='sleepy', slavenames=['w1'], factory=sleepy),
                 BuilderConfig(name='flaky', slavenames=['w1'], factory=flaky)]
c['schedulers'] = []
c['status'] = [WebStatus(http_port=PORT),
               words.IRC('127.0.0.1', 'livebot', [{'channel': CHANNEL, 'password': KEY}],
                         port=IRC_PORT, allowForce=True, useColors=False,
                         lostDelay=0.5, failedDelay=0.5)]
"""


@pytest.fixture(scope="module")
def ircd(tmp_path_factory, e2e_db_url):  # type: ignore[no-untyped-def]
    server = IrcServer(tmp_path_factory.mktemp("e2e-ircd"), services=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory, e2e_db_url, ircd):  # type: ignore[no-untyped-def]
    cfg = (CFG.replace("IRC_PORT", str(ircd.port)).replace("CHANNEL", repr(CHANNEL))
           .replace("KEY", repr(CHANNEL_KEY)))
    master = start_live_master(tmp_path_factory.mktemp("e2e-irc") / "master", cfg,
                               e2e_db_url)
    master.start_worker("w1", "pw1")
    try:
        yield master
    finally:
        stop_live_master(master)


@pytest.fixture
def alice(ircd, live):  # type: ignore[no-untyped-def]
    user = IrcUser(ircd, "alice")
    user.join()
    try:
        yield user
    finally:
        user.quit()


def bot_in_channel(alice: IrcUser) -> None:
    wait_for(lambda: alice.ask("livebot", "hello", timeout=5) == ["yes?"], 60,
             what="the bot to answer in the channel")


def test_force_and_stop_from_the_channel(live, alice, tmp_path):
    bot_in_channel(alice)
    pidfile = tmp_path / "sleep.pid"
    mark = alice.mark()
    alice.say(CHANNEL, f"livebot: force build --props=pidfile={pidfile} sleepy no hurry")
    alice.wait_for_text("livebot", "build #0 forced", after=mark, timeout=60)
    alice.wait_for_text("livebot", "I'll give a shout when the build finishes", after=mark)
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30,
             what="the sleeping step to start")
    pid = int(pidfile.read_text())
    page = requests.get(live.url + "/builders/sleepy/builds/0", timeout=10).text
    assert "forced: by IRC user alice on channel #bb: no hurry" in page

    assert alice.ask("livebot", "stop build sleepy 'enough waiting'") == [
        "build 0 interrupted"]

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, 30, what="the sleep process to be killed")
    alice.wait_for_text("livebot", re.compile(r"^Hey! build sleepy #0 is complete: "
                                              r"Exception \["), after=mark, timeout=30)
    alice.wait_for_text("livebot", f"Build details are at {live.url}/builders/sleepy/"
                                   "builds/0", after=mark)
    page = requests.get(live.url + "/builders/sleepy/builds/0", timeout=10).text
    assert "stopped: by IRC user alice on channel #bb: enough waiting" in page


def test_subscription_announces_a_real_build(live, alice):
    bot_in_channel(alice)
    assert alice.ask("livebot", "notify on finished") == [
        "The following events are being notified: ['finished']"]
    mark = alice.mark()
    # forced privately: the private contact watches it, the channel hears of it as a
    # subscriber
    alice.say("livebot", "force build --props=colour=red quick see it")
    line = alice.wait_for_text("livebot", re.compile(r"^build #\d+ of quick is complete"),
                               after=mark, timeout=60, target=CHANNEL)
    alice.wait_for_text("livebot", re.compile(r"^Hey! build quick #\d+ is complete"),
                        after=mark, target=alice.nick)
    number = int(re.search(r"#(\d+)", line.text).group(1))
    assert line.text == (f"build #{number} of quick is complete: Success [build successful]"
                         f"  Build details are at {live.url}/builders/quick/builds/{number}")
    log = requests.get(f"{live.url}/builders/quick/builds/{number}/steps/say/logs/stdio/"
                       "text", timeout=10).text
    assert "colour=red" in log


def test_transition_subscription_on_a_real_worker(live, alice):
    """Privately subscribed to failureToSuccess only: a failing build on the worker is not
    announced to alice, the next, successful one is; the channel that forced both hears
    the end of each."""
    bot_in_channel(alice)
    assert alice.ask("livebot", "notify on failureToSuccess", target="livebot") == [
        "The following events are being notified: ['failureToSuccess']"]
    mark = alice.mark()
    for rc, result in (("1", "Failure"), ("0", "Success")):
        alice.say(CHANNEL, f"livebot: force build --props=rc={rc} flaky rc {rc}")
        alice.wait_for_text("livebot", re.compile(rf"^Hey! build flaky #\d+ is complete: "
                                                  rf"{result} \["), after=mark, timeout=60,
                            target=CHANNEL)
    line = alice.wait_for_text("livebot", re.compile(r"^build #\d+ of flaky is complete"),
                               after=mark, target=alice.nick)
    number = int(re.search(r"#(\d+)", line.text).group(1))
    assert line.text == (f"build #{number} of flaky is complete: Success [build successful]"
                         f"  Build details are at {live.url}/builders/flaky/builds/{number}")
    assert [m.text for m in alice.messages_from("livebot", mark, alice.nick)] == [line.text]
