"""/notifications and /json/notifications through the HTTP test client."""

from __future__ import annotations

import pytest

from bbweb.status.builder import FAILURE, SUCCESS
from bbweb.status.mail import MailNotifier
from tests.notifiers.conftest import Clock, build, feed, mail_cfg


@pytest.fixture
def history(make_master, smtp, sender):  # type: ignore[no-untyped-def]
    """Two notifiers: 'team' mailed two builds; 'ops' refused once, skipped once."""
    master = make_master(mail_cfg(
        "c['status'].append(MailNotifier(fromaddr='bb@example.org', name='team'))\n"
        "c['status'].append(WebStatus(http_port=8010))\n"))
    clock = Clock()
    build(master, "runtests", FAILURE, clock)
    build(master, "runtests", SUCCESS, clock)
    common = {"relayhost": "127.0.0.1", "smtpPort": smtp.port}
    feed(MailNotifier(sender, sendToInterestedUsers=False, name="team",
                      extraRecipients=["list@example.org"], **common), master)
    feed(MailNotifier(sender, name="ops", extraRecipients=["refused-x@example.org"],
                      mode=("failing",), **common), master)
    feed(MailNotifier(sender, name="ops", mode=("passing",), **common), master)
    return master


def test_page_lists_each_notifier(history):
    client = history.app().test_client()
    page = client.get("/notifications").get_data(as_text=True)
    assert '<h2 id="notifier-ops">ops</h2>' in page
    assert '<h2 id="notifier-team">team</h2>' in page
    team = page[page.index("notifier-team"):]
    assert '<a href="./builders/runtests/builds/1">runtests #1 (success)</a>' in team
    assert "<td>list@example.org</td>" in team
    assert '<td class="outcome sent">sent</td>' in team
    assert "<code>250 Message accepted for delivery</code>" in team
    ops = page[page.index("notifier-ops"):page.index("notifier-team")]
    assert '<td class="outcome rejected">rejected</td>' in ops
    assert "550 5.1.1 no such mailbox" in ops
    assert '<td class="outcome skipped">skipped</td>' in ops


def test_failures_only_and_json(history):
    client = history.app().test_client()
    data = client.get("/json/notifications?failures=1").get_json()
    assert data["failures_only"] is True
    assert data["notifiers"]["team"] == []
    (rejected,) = data["notifiers"]["ops"]
    assert rejected["outcome"] == "rejected"
    assert rejected["recipients"] == ["refused-x@example.org"]
    assert (rejected["builder"], rejected["build_number"]) == ("runtests", 0)
    assert rejected["message_id"].startswith("<bbweb.")
    every = client.get("/json/notifications?notifier=team&limit=1").get_json()
    assert list(every["notifiers"]) == ["team"]
    (latest,) = every["notifiers"]["team"]
    assert latest["what"] == "runtests #1 (success)" and latest["outcome"] == "sent"
    page = client.get("/notifications?failures=1").get_data(as_text=True)
    assert "Nothing failed yet." in page


def test_answers_are_escaped(history):
    from bbweb.engine import notifications as records

    with history.db.write() as conn:
        records.start_attempt(conn, "team", 999, "<k>", what="<script>x</script>",
                              recipients=["<b>@example.org"], outcome="failed",
                              answer="<img src=x onerror=alert(1)>")
    page = history.app().test_client().get("/notifications").get_data(as_text=True)
    assert "<script>x" not in page and "<img src" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_private_site_protects_them(make_master):
    master = make_master(mail_cfg(
        "from bbweb.auth import Authz, BasicAuth\n"
        "c['status'].append(WebStatus(http_port=8010, authz=Authz(\n"
        "    auth=BasicAuth([('alice', 'pw')]), view='auth')))\n"))
    client = master.app().test_client()
    assert client.get("/json/notifications", headers={"Accept": "application/json"}
                      ).status_code == 401
    resp = client.get("/notifications", headers={"Accept": "text/html"})
    assert resp.status_code in (302, 303) and "login" in resp.headers["Location"]
