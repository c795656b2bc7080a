"""The notifier framework: the plugin contract checked at load time, names, delivering
once, and retries under the daemon without blocking other notifiers."""

from __future__ import annotations

import textwrap

import pytest

from bbweb.mastercfg.errors import ConfigErrors
from bbweb.plugins.notifiers.base import (
    DeliveryError,
    Notification,
    Notifier,
    Rejected,
    check_notifier_class,
)
from bbweb.plugins.notifiers.loading import load_notifiers
from bbweb.plugins.registry import load_plugin_settings
from bbweb.status.builder import FAILURE, SUCCESS
from tests.daemon.conftest import saved_cursor
from tests.notifiers.conftest import MAIL_CFG, Clock, attempts, build, feed
from tests.support.polling import wait_for


class Tally(Notifier):
    """Counts finished builds; fails while ``failures`` is positive."""

    plugin_name = "tally"
    event_kinds = frozenset({"build.finished"})

    def __init__(self, name: str | None = None, failures: int = 0, refuse: bool = False):
        super().__init__(name)
        self.failures = failures
        self.refuse = refuse
        self.delivered: list[str] = []
        self.calls = 0

    def notifications_for(self, event):  # type: ignore[no-untyped-def]
        p = event["payload"]
        return [Notification(key=f"{p['builder']}-{p['number']}",
                             what=f"{p['builder']} #{p['number']}", recipients=["log"],
                             builder=p["builder"], build_number=p["number"])]

    def deliver(self, notification):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.refuse:
            raise Rejected("not interested")
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionRefusedError("receiver down")
        self.delivered.append(notification.key)
        return f"ok {notification.key}"


class NoDeliver(Notifier):
    event_kinds = frozenset({"build.finished"})

    def notifications_for(self, event):  # type: ignore[no-untyped-def]
        return []


class BadArity(Tally):
    def deliver(self, notification, extra):  # type: ignore[no-untyped-def,override]
        return ""


class NoKinds(Tally):
    event_kinds = frozenset()


class PlainConsumer:
    consumer_name = "plain"

    def handle_event(self, event):  # type: ignore[no-untyped-def]
        pass


@pytest.mark.parametrize(("obj", "problem"), [
    (Tally, None),
    (PlainConsumer, None),
    (Tally(), "not a class"),
    (NoDeliver, "does not implement deliver()"),
    (BadArity, "must take exactly 1 argument(s) besides self"),
    (NoKinds, "event_kinds is empty"),
    (dict, "neither a bbweb.plugins.notifiers.base.Notifier subclass nor an event consumer"),
])
def test_plugin_contract(obj, problem):
    found = check_notifier_class("thing", obj)
    if problem is None:
        assert found is None
    else:
        assert "notifier plugin 'thing'" in found and problem in found


def test_names():
    assert Tally().consumer_name == "notifier.tally"
    assert Tally(name="x.y-1").name == "x.y-1"
    with pytest.raises(ConfigErrors, match="must be 1-100 letters"):
        Tally(name="a b")


def test_duplicates_are_numbered_and_false_disables(make_master):
    master = make_master(MAIL_CFG + textwrap.dedent("""
        c['status'] += [MailNotifier(fromaddr='a@example.org'),
                        MailNotifier(fromaddr='b@example.org'),
                        MailNotifier(fromaddr='c@example.org', name='team')]
    """))
    found, failures, warnings = load_notifiers(master.config,
                                               load_plugin_settings(master.basedir))
    assert [n.name for n in found] == ["mail", "mail-2", "team"]
    assert failures == {}
    assert "two notifiers are named 'mail': the later one runs as 'mail-2'" in warnings[0]
    (master.basedir / "plugins.toml").write_text("[notifiers]\nmail = false\n")
    found, failures, warnings = load_notifiers(master.config,
                                               load_plugin_settings(master.basedir))
    assert found == [] and failures == {}
    assert "is not run: plugins.toml sets mail = false" in warnings[0]


def test_plugins_toml_failures(make_master):
    master = make_master(MAIL_CFG)
    (master.basedir / "plugins.toml").write_text(
        '[notifiers]\nmail = { fromaddr = "a@example.org", colour = "blue" }\n'
        'ghost = true\n')
    found, failures, _ = load_notifiers(master.config, load_plugin_settings(master.basedir))
    assert found == []
    assert failures == {
        "notifiers.mail": "MailNotifier: unknown argument(s) colour",
        "notifiers.ghost": "no such notifier is installed (installed: gerrit, github, "
                           "httpstatuspush, irc, mail, statuspush)"}


def test_relative_ca_file_is_relative_to_the_basedir(make_master, certdir):
    master = make_master(MAIL_CFG)
    (master.basedir / "ca.pem").write_bytes((certdir / "cert.pem").read_bytes()
                                            if (certdir / "cert.pem").exists() else b"x")
    (master.basedir / "plugins.toml").write_text(
        '[notifiers]\nmail = { fromaddr = "a@example.org", smtpCAFile = "ca.pem", '
        'name = "relay" }\n')
    (notifier,), failures, _ = load_notifiers(master.config,
                                              load_plugin_settings(master.basedir))
    assert failures == {}
    assert notifier.name == "relay"
    assert notifier.smtp.ca_file == str(master.basedir / "ca.pem")


def test_deliver_once_and_record(mail_master):
    clock = Clock()
    build(mail_master, "runtests", FAILURE, clock)
    build(mail_master, "docs", SUCCESS, clock)
    tally = Tally()
    feed(tally, mail_master)
    feed(tally, mail_master)  # every event again: nothing is delivered twice
    assert tally.delivered == ["runtests-0", "docs-0"]
    rows = attempts(mail_master, "tally")
    assert [(r.what, r.outcome, r.answer) for r in rows] == [
        ("runtests #0", "sent", "ok runtests-0"), ("docs #0", "sent", "ok docs-0")]
    refusing = Tally(name="refusing", refuse=True)
    feed(refusing, mail_master)
    feed(refusing, mail_master)
    assert refusing.calls == 2  # refused for good: recorded once each, never retried
    assert [r.outcome for r in attempts(mail_master, "refusing")] == ["rejected"] * 2


def test_failed_delivery_raises_for_a_retry(mail_master):
    build(mail_master, "runtests", FAILURE, Clock())
    flaky = Tally(name="flaky", failures=1)
    with pytest.raises(DeliveryError, match="runtests #0: ConnectionRefusedError"):
        feed(flaky, mail_master)
    feed(flaky, mail_master)
    assert [(r.outcome, r.answer) for r in attempts(mail_master, "flaky")] == [
        ("failed", "ConnectionRefusedError: receiver down"), ("sent", "ok runtests-0")]


def test_daemon_retries_a_failing_notifier_and_others_go_on(mail_master, daemons):
    flaky = Tally(name="flaky", failures=3)
    steady = Tally(name="steady")
    d = daemons(mail_master.basedir, consumers=[flaky, steady], holder="d")
    for name in ("notifier.flaky", "notifier.steady"):
        wait_for(lambda n=name: saved_cursor(mail_master, n) is not None,
                 what=f"{name} to start")
    clock = Clock()
    build(mail_master, "runtests", FAILURE, clock)
    build(mail_master, "runtests", SUCCESS, clock)
    wait_for(lambda: steady.delivered == ["runtests-0", "runtests-1"],
             what="the healthy notifier to deliver both")
    wait_for(lambda: flaky.delivered == ["runtests-0", "runtests-1"],
             what="the failing notifier to get through after its retries")
    assert d.stop() == 0
    assert [r.outcome for r in attempts(mail_master, "flaky")] == [
        "failed", "failed", "failed", "sent", "sent"]
