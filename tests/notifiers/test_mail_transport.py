"""SMTP transport against real servers: STARTTLS and implicit TLS with verified
certificates, AUTH only when encrypted, refusals, and sending nothing twice."""

from __future__ import annotations

import pytest

from bbweb.plugins.notifiers.base import DeliveryError
from bbweb.status.builder import FAILURE
from bbweb.status.mail import MailNotifier
from tests.notifiers.conftest import Clock, attempts, build, feed
from tests.support.smtpd import PASSWORD, USER

# aiosmtpd warns about servers taking AUTH without STARTTLS: what two of these servers are
pytestmark = pytest.mark.filterwarnings(
    "ignore:Requiring AUTH while not requiring TLS:UserWarning")


def failing_build(master):  # type: ignore[no-untyped-def]
    build(master, "runtests", FAILURE, Clock())


def notifier(server, sender, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("extraRecipients", ["list@example.org"])
    return MailNotifier(sender, relayhost="127.0.0.1", smtpPort=server.port,
                        sendToInterestedUsers=False, **kwargs)


def test_starttls_and_auth_with_a_pinned_ca(mail_master, smtp_starttls, sender):
    failing_build(mail_master)
    n = notifier(smtp_starttls, sender, useTls=True, smtpUser=USER, smtpPassword=PASSWORD,
                 smtpCAFile=str(smtp_starttls.cert))
    feed(n, mail_master)
    (mail,) = smtp_starttls.received(sender)
    assert mail.tls and mail.auth == USER
    assert mail["Subject"] == "buildbot failure in Mail Project on runtests"


def test_credentials_alone_require_starttls(mail_master, smtp_starttls, sender):
    """smtpUser/smtpPassword without useTls still encrypt before AUTH."""
    failing_build(mail_master)
    n = notifier(smtp_starttls, sender, smtpUser=USER, smtpPassword=PASSWORD,
                 smtpCAFile=str(smtp_starttls.cert))
    feed(n, mail_master)
    (mail,) = smtp_starttls.received(sender)
    assert mail.tls and mail.auth == USER


def test_implicit_tls(mail_master, smtp_smtps, sender):
    failing_build(mail_master)
    n = notifier(smtp_smtps, sender, useSmtps=True, smtpUser=USER, smtpPassword=PASSWORD,
                 smtpCAFile=str(smtp_smtps.cert))
    feed(n, mail_master)
    (mail,) = smtp_smtps.received(sender)
    assert mail.tls and mail.auth == USER


def test_unverified_certificate_is_refused(mail_master, smtp_starttls, sender):
    failing_build(mail_master)
    n = notifier(smtp_starttls, sender, useTls=True, smtpUser=USER, smtpPassword=PASSWORD)
    with pytest.raises(DeliveryError, match="certificate of the SMTP server"):
        feed(n, mail_master)
    assert smtp_starttls.received(sender) == []
    (row,) = attempts(mail_master)
    assert row.outcome == "failed" and "pin its CA with smtpCAFile" in row.answer


def test_no_password_over_a_clear_connection(mail_master, smtp_clear_auth, sender, caplog):
    failing_build(mail_master)
    n = notifier(smtp_clear_auth, sender, smtpUser=USER, smtpPassword=PASSWORD)
    with pytest.raises(DeliveryError, match="does not offer STARTTLS; refusing to send the "
                                            "SMTP password"):
        feed(n, mail_master)
    assert smtp_clear_auth.received(sender) == []
    (row,) = attempts(mail_master)
    assert row.outcome == "failed" and "unencrypted connection" in row.answer


def test_use_tls_needs_starttls(mail_master, smtp, sender):
    failing_build(mail_master)
    n = notifier(smtp, sender, useTls=True)
    with pytest.raises(DeliveryError, match="useTls=True requires it"):
        feed(n, mail_master)


def test_wrong_password(mail_master, smtp_starttls, sender):
    failing_build(mail_master)
    n = notifier(smtp_starttls, sender, useTls=True, smtpUser=USER, smtpPassword="wrong",
                 smtpCAFile=str(smtp_starttls.cert))
    with pytest.raises(DeliveryError, match="refused the login of 'bbweb': 535"):
        feed(n, mail_master)


def test_refusals(mail_master, smtp, sender):
    """Refused for good: recorded and not retried. Some recipients refused: sent to the
    others, the refusal in the answer. Refused for now: retried."""
    failing_build(mail_master)
    gone = notifier(smtp, sender, extraRecipients=["refused-a@example.org"], name="gone")
    feed(gone, mail_master)
    partly = notifier(smtp, sender, name="partly",
                      extraRecipients=["ok@example.org", "refused-b@example.org"])
    feed(partly, mail_master)
    busy = notifier(smtp, sender, extraRecipients=["later-c@example.org"], name="busy")
    with pytest.raises(DeliveryError, match="450"):
        feed(busy, mail_master)
    assert [m.rcpt_tos for m in smtp.received(sender)] == [["ok@example.org"]]
    rows = {r.notifier: r for r in attempts(mail_master)}
    assert rows["gone"].outcome == "rejected" and "550" in rows["gone"].answer
    assert rows["partly"].outcome == "sent"
    assert "refused: refused-b@example.org: 550" in rows["partly"].answer
    assert rows["busy"].outcome == "failed"


def test_an_event_handled_again_sends_nothing_twice(mail_master, smtp, sender):
    failing_build(mail_master)
    n = notifier(smtp, sender)
    feed(n, mail_master)
    feed(n, mail_master)  # e.g. the cursor was not saved before a crash
    assert len(smtp.received(sender)) == 1
    assert [r.outcome for r in attempts(mail_master)] == ["sent"]
