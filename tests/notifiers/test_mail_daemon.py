"""MailNotifier run by the master daemon: enabled from master.cfg or plugins.toml, an SMTP
outage that loses nothing, and a daemon killed with SIGKILL while sending."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bbweb.status.builder import FAILURE, SUCCESS
from tests.daemon.conftest import FAST, saved_cursor
from tests.notifiers.conftest import MAIL_CFG, Clock, attempts, build
from tests.support.polling import wait_for
from tests.support.smtpd import SmtpServer

REPO = Path(__file__).resolve().parents[2]


def numbers(mails) -> list[int]:  # type: ignore[no-untyped-def]
    return [int(re.search(r"/builds/(\d+)\n", m.body()).group(1)) for m in mails]


def with_notifier(port: int, sender: str) -> str:
    return MAIL_CFG + textwrap.dedent(f"""
        c['status'].append(MailNotifier(fromaddr={sender!r}, relayhost='127.0.0.1',
                                        smtpPort={port}, mode='all',
                                        sendToInterestedUsers=False,
                                        extraRecipients=['list@example.org']))
    """)


def wait_until_following(master, name="notifier.mail"):  # type: ignore[no-untyped-def]
    """A new notifier starts at the latest event: wait until it has its cursor."""
    wait_for(lambda: saved_cursor(master, name) is not None,
             what=f"{name} to take its place in the event stream")


def test_enabled_in_master_cfg(make_master, daemons, smtp, sender):
    master = make_master(with_notifier(smtp.port, sender))
    d = daemons(master.basedir, holder="d")
    wait_until_following(master)
    clock = Clock()
    build(master, "runtests", FAILURE, clock)
    build(master, "docs", SUCCESS, clock)
    mails = smtp.wait_for_mail(sender, 2)
    assert [m["Subject"] for m in mails] == [
        "buildbot failure in Mail Project on runtests",
        "buildbot success in Mail Project on docs"]
    assert d.stop() == 0


def test_enabled_in_plugins_toml(make_master, daemons, smtp, sender):
    master = make_master(MAIL_CFG)
    (master.basedir / "plugins.toml").write_text(
        f'[notifiers]\nmail = {{ fromaddr = "{sender}", relayhost = "127.0.0.1", '
        f'smtpPort = {smtp.port}, mode = "failing", lookup = "example.org", '
        'builders = ["runtests"] }\n')
    d = daemons(master.basedir, holder="d")
    wait_until_following(master)
    clock = Clock()
    build(master, "runtests", FAILURE, clock, owner="carol")
    (mail,) = smtp.wait_for_mail(sender, 1)
    assert mail["To"] == "carol@example.org"
    assert d.stop() == 0


def test_plugins_toml_errors_are_logged_and_others_run(make_master, daemons, smtp, sender,
                                                      caplog):
    master = make_master(with_notifier(smtp.port, sender))
    (master.basedir / "plugins.toml").write_text(
        '[notifiers]\nmail = { fromaddr = "x@example.org", mode = "sometimes" }\n'
        'nosuchnotifier = true\n')
    d = daemons(master.basedir, holder="d")
    wait_for(lambda: saved_cursor(master, "notifier.mail") is not None,
             what="master.cfg's notifier to start")
    build(master, "runtests", FAILURE, Clock())
    smtp.wait_for_mail(sender, 1)
    assert d.stop() == 0
    text = caplog.text
    assert "plugin notifiers.mail is not available: MailNotifier: mode sometimes is not a " \
           "valid mode" in text
    assert "plugin notifiers.nosuchnotifier is not available: no such notifier" in text


@pytest.fixture
def own_smtp(certdir):  # type: ignore[no-untyped-def]
    """A server of this test's own, to stop and start again on the same port."""
    server = SmtpServer("plain", certdir).start()
    yield server
    server.stop()


OUTAGE_BUILDS = 20


def test_outage_loses_nothing_and_keeps_order(make_master, daemons, own_smtp, sender):
    """The SMTP server is down while 20 builds finish; once it is back, all 20 mails
    arrive, in the order the builds finished, each once."""
    master = make_master(with_notifier(own_smtp.port, sender))
    d = daemons(master.basedir, holder="d")
    wait_until_following(master)
    own_smtp.stop()
    clock = Clock()
    expected = list(range(OUTAGE_BUILDS))
    for number in expected:
        build(master, "runtests", (FAILURE, SUCCESS)[number % 2], clock)
    wait_for(lambda: [r.outcome for r in attempts(master)].count("failed") >= 2,
             what="failed deliveries while the server is down")
    assert not own_smtp.received(sender)
    own_smtp.start()
    own_smtp.wait_for_mail(sender, OUTAGE_BUILDS)
    # anything sent twice would come after the twentieth mail: wait for the notifier to be
    # done (every build's attempt recorded as sent) before counting
    wait_for(lambda: [r.build_number for r in attempts(master) if r.outcome == "sent"]
             == expected, what="every delivery to be recorded as sent")
    assert d.stop() == 0
    mails = own_smtp.received(sender)
    assert numbers(mails) == expected  # all of them, in event order, none twice
    assert [m["Subject"] for m in mails] == [
        f"buildbot {('failure', 'success')[n % 2]} in Mail Project on runtests"
        for n in expected]
    assert len({m.message_id for m in mails}) == OUTAGE_BUILDS
    rows = attempts(master)
    assert {r.outcome for r in rows} == {"failed", "sent"}
    # while the server was down only the first build's mail was tried (again and again):
    # nothing overtook it
    assert {r.build_number for r in rows if r.outcome == "failed"} == {0}
    assert all("Connection refused" in r.answer or "Errno" in r.answer
               for r in rows if r.outcome == "failed")
    assert all("Connection refused" in r.answer or "Errno" in r.answer
               for r in rows if r.outcome == "failed")


CRASHABLE = """
import sys
from bbweb.daemon import run_daemon
sys.exit(run_daemon({basedir!r}, holder={holder!r}, **{fast!r}))
"""


def test_sigkill_while_sending(make_master, own_smtp, sender, tmp_path):
    """The server stores a mail but the daemon dies before hearing "250": after a restart
    nothing is missing, and the mail sent again carries the same Message-ID."""
    master = make_master(with_notifier(own_smtp.port, sender))
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def spawn(holder: str) -> subprocess.Popen:
        script = tmp_path / f"{holder}.py"
        script.write_text(CRASHABLE.format(basedir=str(master.basedir), holder=holder,
                                           fast=FAST))
        return subprocess.Popen([sys.executable, str(script)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    first = spawn("first")
    try:
        wait_until_following(master)
        own_smtp.hold()  # store each mail, then keep the client waiting
        clock = Clock()
        for result in (FAILURE, SUCCESS, FAILURE):
            build(master, "runtests", result, clock)
        own_smtp.wait_for_mail(sender, 1)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
    own_smtp.release()
    second = spawn("second")
    try:
        wait_for(lambda: len({m.message_id for m in own_smtp.received(sender)}) == 3,
                 timeout=60, what="every mail after the restart")
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(30)
    mails = own_smtp.received(sender)
    # the interrupted mail came twice, with one Message-ID; nothing is missing or reordered
    assert numbers(mails) == [0, 0, 1, 2]
    assert mails[0].message_id == mails[1].message_id
    assert len({m.message_id for m in mails}) == 3
    rows = attempts(master)
    assert [r.outcome for r in rows].count("sending") == 1  # the interrupted attempt
    assert [r.build_number for r in rows if r.outcome == "sent"] == [0, 1, 2]
