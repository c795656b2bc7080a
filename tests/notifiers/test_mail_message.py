"""What a build mail says and to whom: 0.8's default message byte for byte, the subject,
recipients (lookup, Domain, stored user emails, To vs CC), attachments and extra headers;
each mail received by a real SMTP server and parsed back with the email package."""

from __future__ import annotations

import email.utils

import pytest

from bbweb.auth.users import add_user
from bbweb.engine.buildsets import create_buildset, create_sourcestamp
from bbweb.mastercfg.properties import Interpolate, WithProperties
from bbweb.status.builder import EXCEPTION, FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS
from bbweb.status.mail import Domain, MailNotifier
from tests.notifiers.conftest import (
    Clock,
    attempts,
    build,
    change,
    feed,
    finish_claimed,
    latest_event,
    run_pending,
)
from tests.support.history import claim


def notifier(smtp, sender, **kwargs):  # type: ignore[no-untyped-def]
    return MailNotifier(sender, relayhost="127.0.0.1", smtpPort=smtp.port, **kwargs)


def changed_build(master, clock, result, **change_fields):  # type: ignore[no-untyped-def]
    """A change builds on runtests (and docs); runtests' build ends with ``result``."""
    change(master, clock, **change_fields)
    claimed = claim(master, "slave1", clock())
    finish_claimed(master, claimed.buildid, result, clock)
    return claimed


EXPECTED_BODY = (
    "The Buildbot has detected a failed build on builder runtests while building frob. "
    "Full details are available at:\n"
    "    http://bb.example.org/builders/runtests/builds/0\n"
    "\n"
    "Buildbot URL: http://bb.example.org/\n"
    "\n"
    "Buildslave for this Build: slave1\n"
    "\n"
    "Build Reason: REASON\n"
    "Build Source Stamp: [branch main] 0123456789ab\n"
    "Blamelist: alice\n"
    "\n"
    "BUILD FAILED: failed compile\n"
    "\n"
    "Sincerely,\n"
    " -The Buildbot\n"
    "\n")


def test_default_message_byte_for_byte(mail_master, smtp, sender):
    clock = Clock()
    changed_build(mail_master, clock, FAILURE, revision="0123456789ab", branch="main",
                  project="frob")
    n = notifier(smtp, sender, lookup="example.org", extraRecipients=["list@example.org"])
    feed(n, mail_master)
    (mail,) = smtp.received(sender)
    reason = n.master_status.getBuildById(1).getReason()
    assert reason
    assert mail.body() == EXPECTED_BODY.replace("REASON", reason)
    assert mail["Subject"] == "buildbot failure in Mail Project on runtests"
    assert mail["From"] == sender
    assert mail["To"] == "alice@example.org"
    assert mail["CC"] == "list@example.org"
    assert mail.rcpt_tos == ["alice@example.org", "list@example.org"]
    assert mail.message.get_content_type() == "text/plain"
    assert mail.message.get_content_charset() == "utf-8"
    assert mail.message["Content-Transfer-Encoding"] == "7bit"
    assert email.utils.parsedate_to_datetime(mail["Date"]) is not None
    assert mail.message_id.startswith("<bbweb.") and mail.message_id.endswith(
        "@bb.example.org>")
    (row,) = attempts(mail_master)
    assert (row.outcome, row.builder, row.build_number, row.message_key) == (
        "sent", "runtests", 0, mail.message_id)
    assert row.answer == "250 Message accepted for delivery"


@pytest.mark.parametrize(("result", "intro", "summary"), [
    (SUCCESS, "a passing build", "Build succeeded!"),
    (WARNINGS, "a problem in the build", "Build Had Warnings: warnings lint"),
    (EXCEPTION, "a build exception", "BUILD FAILED: exception compile"),
    (SKIPPED, "a skipped build", "Build Skipped: odd"),
    (RETRY, "a build that will be retried", "Build Will Be Retried: odd"),
])
def test_every_result_has_a_message(mail_master, smtp, sender, result, intro, summary):
    """0.8's formatter crashed on SKIPPED and RETRY (reachable with mode 'change')."""
    clock = Clock()
    build(mail_master, "runtests", SUCCESS, clock)
    after = latest_event(mail_master)
    build(mail_master, "runtests", result, clock)
    n = notifier(smtp, sender, mode=("failing", "passing", "warnings", "exception",
                                     "change"), sendToInterestedUsers=False,
                 extraRecipients=["list@example.org"])
    feed(n, mail_master, after)
    (mail,) = smtp.received(sender)
    body = mail.body()
    assert body.startswith(f"The Buildbot has detected {intro} on builder runtests"), body
    assert f"\n\n{summary}\n\nSincerely,\n" in body


def test_restored_and_new_failure_wording(mail_master, smtp, sender):
    clock = Clock()
    for result in (SUCCESS, FAILURE, SUCCESS):
        build(mail_master, "runtests", result, clock)
    n = notifier(smtp, sender, mode=("change",), sendToInterestedUsers=False,
                 extraRecipients=["list@example.org"])
    feed(n, mail_master)
    first, second = smtp.received(sender)
    assert first.body().startswith("The Buildbot has detected a new failure on builder")
    assert second.body().startswith("The Buildbot has detected a restored build on builder")
    assert second["Subject"] == "buildbot success in Mail Project on runtests"


def test_recipients_lookup_owners_and_double_at(mail_master, smtp, sender):
    clock = Clock()
    change(mail_master, clock, author="alice")
    change(mail_master, clock, author="'User' <u@foo.com>@foo.com")  # 0.8's git quirk
    change(mail_master, clock, author="a,b@evil.org")  # would be two addresses
    run_pending(mail_master, FAILURE, clock)
    n = notifier(smtp, sender, lookup=Domain("example.org"), builders=["runtests"],
                 extraRecipients=["list@example.org"])
    feed(n, mail_master)
    mails = smtp.received(sender)
    assert [m["To"] for m in mails] == ["alice@example.org", "'User' <u@foo.com>",
                                        "list@example.org"]
    assert [m.rcpt_tos for m in mails] == [["alice@example.org", "list@example.org"],
                                           ["u@foo.com", "list@example.org"],
                                           ["list@example.org"]]
    assert mails[2]["CC"] is None  # nobody interested left: extras go to To


def test_owner_and_lookup_object(mail_master, smtp, sender):
    clock = Clock()
    build(mail_master, "runtests", FAILURE, clock, owner="carol")
    asked = []

    class Directory:
        def getAddress(self, name):  # type: ignore[no-untyped-def]
            asked.append(name)
            return {"carol": "Carol C <carol@corp.example.org>"}.get(name)

    n = notifier(smtp, sender, lookup=Directory())
    feed(n, mail_master)
    (mail,) = smtp.received(sender)
    assert asked == ["carol"]
    assert mail["To"] == "Carol C <carol@corp.example.org>"


def test_stored_user_emails_without_lookup(mail_master, smtp, sender):
    add_user(mail_master.db, "dave", attrs={"git": "Dave <dave@vcs.example.org>",
                                                  "email": "dave@mail.example.org"})
    add_user(mail_master.db, "erin", bb_username="erin",
             attrs={"email": "erin@mail.example.org"})
    clock = Clock()
    change(mail_master, clock, author="Dave <dave@vcs.example.org>")
    run_pending(mail_master, FAILURE, clock)
    build(mail_master, "runtests", FAILURE, clock, owner="erin")
    build(mail_master, "runtests", FAILURE, clock, owner="nobody-known")
    n = notifier(smtp, sender, builders=["runtests"])
    feed(n, mail_master)
    mails = smtp.received(sender)
    assert [m["To"] for m in mails] == ["dave@mail.example.org", "erin@mail.example.org"]
    rows = attempts(mail_master)
    assert [r.outcome for r in rows] == ["sent", "sent", "skipped"]
    assert "no recipients" in rows[2].answer


def test_extra_recipients_only(mail_master, smtp, sender):
    clock = Clock()
    changed_build(mail_master, clock, FAILURE)
    n = notifier(smtp, sender, sendToInterestedUsers=False, lookup="example.org",
                 builders=["runtests"],
                 extraRecipients=["b@example.org", "a@example.org"])
    feed(n, mail_master)
    (mail,) = smtp.received(sender)
    assert mail["To"] == "a@example.org, b@example.org"
    assert mail["CC"] is None


def _patched_build(master, clock, body):  # type: ignore[no-untyped-def]
    with master.db.write() as conn:
        ssid = create_sourcestamp(conn, branch="main", revision="abc",
                                  patch={"level": 1, "body": body, "author": "pat",
                                         "comment": "try this"})
        create_buildset(conn, master.config, sourcestampids=[ssid],
                        builder_names=["runtests"], reason="try")
    claimed = claim(master, "slave1", clock())
    finish_claimed(master, claimed.buildid, FAILURE, clock,
                   log=[("h", "$ make\n")] + [("o", f"line {i:05d}\n") for i in range(600)])
    return claimed


def test_logs_and_patches_are_attached(mail_master, smtp, sender):
    clock = Clock()
    _patched_build(mail_master, clock, b"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n")
    _patched_build(mail_master, clock, b"\xff\xfe binary patch")
    n = notifier(smtp, sender, lookup="example.org", addLogs=["compile.stdio"],
                 logTailSize=1024)
    feed(n, mail_master)
    text_mail, binary_mail = smtp.received(sender)
    assert text_mail["To"] == "pat@example.org"  # the patch author is to blame
    assert text_mail.message.get_content_type() == "multipart/mixed"
    assert "Build Source Stamp: [branch main] abc (plus patch)\n" in text_mail.body()
    files = text_mail.attachments()
    assert sorted(files) == ["compile.stdio", "source patch 0"]
    assert files["source patch 0"] == ("text/plain", "--- a/x\n+++ b/x\n@@ -1 +1 @@\n"
                                                     "-old\n+new\n")
    ctype, log = files["compile.stdio"]
    assert ctype == "text/plain"
    # 600 lines of 11 characters: only the end, and the attachment says so
    assert log.startswith("[only the last ")
    assert "builders/runtests/builds/0/steps/compile/logs/stdio" in log.splitlines()[0]
    assert log.endswith("line 00599\n")
    assert "line 00000" not in log
    assert len(log) < 1024 + 300
    ctype, data = binary_mail.attachments()["source patch 0"]
    assert (ctype, data) == ("application/octet-stream", b"\xff\xfe binary patch")


def test_add_logs_true_attaches_every_log(mail_master, smtp, sender):
    clock = Clock()
    build(mail_master, "runtests", WARNINGS, clock)
    n = notifier(smtp, sender, sendToInterestedUsers=False, addLogs=True, addPatch=False,
                 extraRecipients=["list@example.org"])
    feed(n, mail_master)
    (mail,) = smtp.received(sender)
    assert sorted(mail.attachments()) == ["compile.stdio", "lint.stdio"]
    assert mail.attachments()["lint.stdio"] == ("text/plain", "ok\n")


def test_extra_headers_are_rendered_and_cannot_inject(mail_master, smtp, sender):
    clock = Clock()
    build(mail_master, "runtests", FAILURE, clock,
          properties={"ticket": "T-1\r\nBcc: victim@example.org", "team": "core"})
    n = notifier(smtp, sender, sendToInterestedUsers=False,
                 extraRecipients=["list@example.org"],
                 extraHeaders={"X-Ticket": Interpolate("%(prop:ticket)s"),
                               WithProperties("X-Team-%(team)s"): "yes",
                               "X-Static": "plain value"})
    feed(n, mail_master)
    (mail,) = smtp.received(sender)
    assert mail["X-Ticket"] == "T-1 Bcc: victim@example.org"
    assert mail["Bcc"] is None
    assert mail["X-Team-core"] == "yes"
    assert mail["X-Static"] == "plain value"
    assert mail.rcpt_tos == ["list@example.org"]


def test_subject_from_argument_with_all_keys(mail_master, smtp, sender):
    clock = Clock()
    build(mail_master, "docs", EXCEPTION, clock)
    n = notifier(smtp, sender, sendToInterestedUsers=False, mode="all",
                 extraRecipients=["list@example.org"],
                 subject="[%(projectName)s|%(title)s] %(builder)s: %(result)s")
    feed(n, mail_master)
    (mail,) = smtp.received(sender)
    assert mail["Subject"] == "[Mail Project|Mail Project] docs: exception"
