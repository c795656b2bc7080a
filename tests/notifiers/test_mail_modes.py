"""The mode table, driven by real builds made through the engine and mail received by a
real SMTP server: which finished build gets a mail under which mode."""

from __future__ import annotations

import re

from bbweb.status.builder import EXCEPTION, FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS
from bbweb.status.mail import MailNotifier
from tests.notifiers.conftest import Clock, attempts, build, feed

# results of builds #0.. of 'runtests'
HISTORY = [FAILURE, FAILURE, SUCCESS, SUCCESS, WARNINGS, EXCEPTION, FAILURE, SKIPPED, RETRY]

EXPECTED = {
    # 'change' never mails about a first build; SKIPPED and RETRY only mail through it
    ("change",): {2, 4, 5, 6, 7, 8},
    ("failing",): {0, 1, 6},
    ("passing",): {2, 3},
    # a first failure is no 'problem'; a failure after an exception is one
    ("problem",): {6},
    ("warnings",): {4},
    ("exception",): {5},
    "all": {0, 1, 2, 3, 4, 5, 6},  # 0.8's code: failing, passing, warnings, exception
    "warnings": {0, 1, 4, 6},  # the string: failing and warnings
    None: {0, 1, 2, 3, 4, 6},  # the default: failing, passing, warnings
    ("change", "problem"): {2, 4, 5, 6, 7, 8},
}


def _numbers(mails) -> set[int]:  # type: ignore[no-untyped-def]
    found = set()
    for mail in mails:
        m = re.search(r"/builders/runtests/builds/(\d+)\n", mail.body())
        assert m, mail.body()
        found.add(int(m.group(1)))
    return found


def test_mode_table(mail_master, smtp, sender):
    clock = Clock()
    for result in HISTORY:
        build(mail_master, "runtests", result, clock)
    notifiers = {}
    for i, mode in enumerate(EXPECTED):
        kwargs = {} if mode is None else {"mode": mode}
        notifiers[mode] = MailNotifier(f"m{i}-{sender}", relayhost="127.0.0.1",
                                       smtpPort=smtp.port, sendToInterestedUsers=False,
                                       extraRecipients=["list@example.org"],
                                       name=f"mode{i}", **kwargs)
    for mode, notifier in notifiers.items():
        feed(notifier, mail_master)
        got = _numbers(smtp.received(notifier.fromaddr))
        assert got == EXPECTED[mode], f"mode {mode!r}"
        assert len(smtp.received(notifier.fromaddr)) == len(got)  # one mail per build
    assert notifiers["all"].mode == ("failing", "passing", "warnings", "exception")
    assert notifiers["warnings"].mode == ("failing", "warnings")


def test_builders_and_categories_filters(mail_master, smtp, sender):
    clock = Clock()
    build(mail_master, "runtests", FAILURE, clock)
    build(mail_master, "docs", FAILURE, clock)
    common = {"relayhost": "127.0.0.1", "smtpPort": smtp.port,
              "sendToInterestedUsers": False, "extraRecipients": ["list@example.org"]}
    only_docs = MailNotifier("docs-" + sender, builders=["docs"], name="docs", **common)
    core = MailNotifier("core-" + sender, categories=["core"], name="core", **common)
    feed(only_docs, mail_master)
    feed(core, mail_master)
    assert [m["Subject"] for m in smtp.received(only_docs.fromaddr)] == [
        "buildbot failure in Mail Project on docs"]
    assert [m["Subject"] for m in smtp.received(core.fromaddr)] == [
        "buildbot failure in Mail Project on runtests"]
    # filtered-out builds leave no trace; mailed ones are recorded as sent
    assert [(a.builder, a.outcome) for a in attempts(mail_master, "core")] == [
        ("runtests", "sent")]


def test_previous_build_getter_decides_change_and_problem(mail_master, smtp, sender):
    """previousBuildGetter returning None means "no previous build": no change or
    problem mail."""
    clock = Clock()
    for result in (SUCCESS, FAILURE, SUCCESS):
        build(mail_master, "runtests", result, clock)
    seen = []

    def no_previous(b):  # type: ignore[no-untyped-def]
        seen.append(b.getNumber())
        return None

    notifier = MailNotifier(sender, mode=("change", "problem"), relayhost="127.0.0.1",
                            smtpPort=smtp.port, sendToInterestedUsers=False,
                            extraRecipients=["list@example.org"],
                            previousBuildGetter=no_previous)
    feed(notifier, mail_master)
    assert smtp.received(sender) == []
    assert seen == [0, 1, 2]


def test_overlapping_builds_compare_with_what_had_finished(mail_master, smtp, sender):
    """Build #1 finishes after #2 started and finished: #2's previous build is #0 (0.8
    took #1, still running, and called that a change)."""
    from tests.notifiers.conftest import finish_claimed
    from tests.support.history import claim, force

    clock = Clock()
    build(mail_master, "runtests", SUCCESS, clock)
    force(mail_master, "runtests")
    first = claim(mail_master, "slave1", clock())
    force(mail_master, "runtests")
    second = claim(mail_master, "slave1", clock())
    finish_claimed(mail_master, second.buildid, SUCCESS, clock)  # #2 ends first
    finish_claimed(mail_master, first.buildid, FAILURE, clock)  # then #1 fails
    notifier = MailNotifier(sender, mode=("change",), relayhost="127.0.0.1",
                            smtpPort=smtp.port, sendToInterestedUsers=False,
                            extraRecipients=["list@example.org"])
    feed(notifier, mail_master)
    mails = smtp.received(sender)
    assert _numbers(mails) == {1}  # #2 (success after #0's success) is no change
    assert mails[0].body().startswith("The Buildbot has detected a new failure on builder")
