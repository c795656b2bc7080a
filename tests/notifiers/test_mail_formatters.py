"""The messageFormatter API (a 0.8-style HTML formatter written for this test), bbweb's
own HTML formatter, buildset summaries, and hostile strings from authors, branches,
comments and properties."""

from __future__ import annotations

import html

from bbweb.status.builder import FAILURE, SUCCESS
from bbweb.status.mail import MailNotifier, htmlMessageFormatter
from bbweb.status.results import Results
from tests.notifiers.conftest import Clock, attempts, change, feed, run_pending


def notifier(smtp, sender, **kwargs):  # type: ignore[no-untyped-def]
    return MailNotifier(sender, relayhost="127.0.0.1", smtpPort=smtp.port, **kwargs)


def tail_report(mode, name, build, results, master_status):  # type: ignore[no-untyped-def]
    """A formatter in the style 0.8's manual showed: a small HTML table, the changes, and
    the end of the last stdio log, escaping what it shows."""
    url = master_status.getURLForThing(build)
    rows = [("Builder", name), ("Result", Results[results].upper()),
            ("Slave", build.getSlavename()), ("Reason", build.getReason()),
            ("Blame", ", ".join(build.getResponsibleUsers())), ("Mode", "+".join(mode))]
    out = ['<table class="report">']
    out += [f"<tr><td>{k}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows]
    out.append("</table>")
    for ss in build.getSourceStamps():
        for ch in ss.changes:
            d = ch.asDict()
            out.append(f"<p>{html.escape(d['who'])}: {html.escape(d['comments'])} "
                       f"({len(d['files'])} files)</p>")
    stdio = [log for log in build.getLogs() if log.getName() == "stdio"][-1]
    step_result, _ = stdio.getStep().getResults()
    text, _cut = stdio.getTail(200)
    out.append(f'<p><a href="{url}">{url}</a> last step: {Results[step_result]}</p>')
    out.append(f"<pre>{html.escape(text)}</pre>")
    return {"body": "\n".join(out), "type": "html",
            "subject": f"[{master_status.getTitle()}] {name} {Results[results]}"}


def test_a_user_html_formatter(mail_master, smtp, sender):
    clock = Clock()
    change(mail_master, clock, author="alice", comments="speed up <the> parser",
           files=["a.c", "b.c"])
    run_pending(mail_master, FAILURE, clock)
    n = notifier(smtp, sender, lookup="example.org", builders=["runtests"],
                 messageFormatter=tail_report, mode=("failing",))
    feed(n, mail_master)
    (mail,) = smtp.received(sender)
    assert mail["Subject"] == "[Mail Project] runtests failure"
    assert mail.message.get_content_type() == "text/html"
    body = mail.body()
    assert "<tr><td>Result</td><td>FAILURE</td></tr>" in body
    assert "<tr><td>Mode</td><td>failing</td></tr>" in body
    assert "alice: speed up &lt;the&gt; parser (2 files)" in body
    assert ('<a href="http://bb.example.org/builders/runtests/builds/0">' in body)
    assert "last step: success" in body  # lint ran after compile failed, and passed
    assert "<pre>ok\n</pre>" in body  # stdout and stderr, no headers


def test_a_formatter_that_fails_is_recorded_and_does_not_block(mail_master, smtp, sender):
    clock = Clock()
    for result in (FAILURE, SUCCESS):
        change(mail_master, clock)
        run_pending(mail_master, result, clock)

    def broken(mode, name, build, results, master_status):  # type: ignore[no-untyped-def]
        if results == FAILURE:
            raise RuntimeError("formatter bug")
        return {"body": "fine", "type": "markdown"} if name == "docs" else \
            {"body": "fine", "type": "plain"}

    n = notifier(smtp, sender, sendToInterestedUsers=False, mode="all",
                 extraRecipients=["list@example.org"], messageFormatter=broken)
    feed(n, mail_master)
    assert [m.body() for m in smtp.received(sender)] == ["fine\n"]
    rows = attempts(mail_master)
    assert [(r.what, r.outcome) for r in rows] == [
        ("runtests #0", "error"), ("docs #0", "error"), ("runtests #1 (success)", "sent"),
        ("docs #1", "error")]
    assert "RuntimeError: formatter bug" in rows[0].answer
    assert "must be 'plain' or 'html'" in rows[3].answer


def test_buildset_summary_over_two_builders(mail_master, smtp, sender):
    clock = Clock()
    change(mail_master, clock, author="bob", project="frob")
    run_pending(mail_master, FAILURE, clock)
    n = notifier(smtp, sender, lookup="example.org", buildSetSummary=True,
                 addLogs=["stdio"], addPatch=False,
                 extraRecipients=["list@example.org"])
    feed(n, mail_master)
    (mail,) = smtp.received(sender)
    assert mail["Subject"] == "buildbot failure in Mail Project on (whole buildset)"
    assert mail["To"] == "bob@example.org"
    assert mail["CC"] == "list@example.org"
    body = mail.body()
    first, second = body.split("Sincerely,\n -The Buildbot\n\n\n\n")[:2]
    assert first.startswith("The Buildbot has detected a failed build on builder runtests "
                            "while building frob.")
    assert second.startswith("The Buildbot has detected a failed build on builder docs ")
    assert body.endswith("Sincerely,\n -The Buildbot\n\n\n\n")
    assert sorted(mail.attachments()) == ["docs.compile.stdio", "docs.lint.stdio",
                                          "runtests.compile.stdio", "runtests.lint.stdio"]
    (row,) = attempts(mail_master)
    assert (row.buildsetid, row.builder, row.outcome) == (1, None, "sent")
    assert row.what == "buildset 1: runtests #0, docs #0 (failure)"


def test_buildset_summary_keeps_only_builds_the_mode_wants(mail_master, smtp, sender):
    clock = Clock()
    change(mail_master, clock)
    run_pending(mail_master, SUCCESS, clock)
    n = notifier(smtp, sender, sendToInterestedUsers=False, buildSetSummary=True,
                 mode=("failing",), extraRecipients=["list@example.org"])
    feed(n, mail_master)
    assert smtp.received(sender) == []
    assert attempts(mail_master) == []


HOSTILE_AUTHOR = "Mallory\r\nBcc: victim@example.org\r\n<script>alert(1)</script>"
HOSTILE_BRANCH = "evil\r\nX-Injected: yes\n<img src=x onerror=alert(2)>"
BIG = "<b>" + "x" * 100_000 + "</b>"


def test_hostile_strings_reach_neither_headers_nor_html(mail_master, smtp, sender):
    clock = Clock()
    change(mail_master, clock, author=HOSTILE_AUTHOR, branch=HOSTILE_BRANCH,
           comments=BIG + "\r\nSubject: spoofed", properties={"p": "v\r\nBcc: x@evil.org"})
    run_pending(mail_master, FAILURE, clock)

    def subject_from_change(mode, name, build, results, master_status):  # type: ignore
        answer = htmlMessageFormatter(mode, name, build, results, master_status)
        answer["subject"] = f"{build.getSourceStamps()[0].branch} by {build.getChanges()[0].who}"
        return answer

    n = notifier(smtp, sender, lookup="example.org", builders=["runtests"],
                 extraRecipients=["list@example.org"], messageFormatter=subject_from_change,
                 extraHeaders={"X-Prop": "%(prop:p)s"})
    feed(n, mail_master)
    (mail,) = smtp.received(sender)
    headers = mail.raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    names = [line.split(":", 1)[0] for line in headers.split("\r\n")
             if line and not line[0].isspace()]
    assert "Bcc" not in names and "X-Injected" not in names
    assert names.count("Subject") == 1
    assert mail["Subject"].startswith("evil X-Injected: yes <img src=x onerror=alert(2)> by "
                                      "Mallory Bcc: victim@example.org")
    assert mail.rcpt_tos == ["list@example.org"]  # the author is no address
    body = mail.body()
    assert "<script>" not in body and "<img" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;b&gt;" + "x" * 100_000 in body
    assert "<b>x" not in body


def test_bbweb_html_formatter_wording(mail_master, smtp, sender):
    clock = Clock()
    change(mail_master, clock, author="alice", branch="main", revision="abc123")
    run_pending(mail_master, FAILURE, clock)
    n = notifier(smtp, sender, lookup="example.org", builders=["runtests"],
                 messageFormatter=htmlMessageFormatter)
    feed(n, mail_master)
    (mail,) = smtp.received(sender)
    body = mail.body()
    assert mail.message.get_content_type() == "text/html"
    assert "<p>The Buildbot has detected a failed build.</p>" in body
    assert ('<a href="http://bb.example.org/builders/runtests/builds/0">' in body)
    assert "<td>[branch main] abc123</td>" in body
    assert "<b>BUILD FAILED: failed compile</b>" in body
