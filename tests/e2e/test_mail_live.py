"""Mail end to end: a change through /change_hook/base, a real worker builds it, the real
``bbweb master`` daemon mails the blamelist over STARTTLS with AUTH, and /json/notifications
reports the delivery."""

from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa

from bbweb.db.schema import consumer_cursors
from tests.e2e.conftest import start_live_master, stop_live_master, wait_for
from tests.support.smtpd import PASSWORD, USER, SmtpServer

CFG = r"""
from bbweb.config import *
from bbweb.status.mail import MailNotifier
c = BuildmasterConfig = {}
c['title'] = 'Mail E2E'
c['buildbotURL'] = 'http://127.0.0.1:PORT/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('w1', 'pw1')]
bad = BuildFactory([ShellCommand(name='compile', descriptionDone=['compile'],
                                 command=['sh', '-c', 'echo oops >&2; exit 2'])])
good = BuildFactory([ShellCommand(name='test', command=['true'])])
c['builders'] = [BuilderConfig(name='broken', slavenames=['w1'], factory=bad),
                 BuilderConfig(name='fine', slavenames=['w1'], factory=good)]
c['schedulers'] = [SingleBranchScheduler(name='main', branch='main',
                                         builderNames=['broken', 'fine'])]
c['status'] = [WebStatus(http_port=PORT, change_hook_dialects={'base': True}),
               MailNotifier(fromaddr='buildbot@example.org', lookup='example.org',
                            mode=('failing',), relayhost='127.0.0.1', smtpPort=SMTP_PORT,
                            useTls=True, smtpUser=SMTP_USER, smtpPassword=SMTP_PASSWORD,
                            smtpCAFile=SMTP_CA, addLogs=['compile.stdio'])]
"""


@pytest.fixture(scope="module")
def smtp(tmp_path_factory, e2e_db_url):  # type: ignore[no-untyped-def]
    """One server per live master (per database), so each sees only its own mail."""
    server = SmtpServer("starttls", tmp_path_factory.mktemp("e2e-smtp")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory, e2e_db_url, smtp):  # type: ignore[no-untyped-def]
    cfg = (CFG.replace("SMTP_PORT", str(smtp.port)).replace("SMTP_USER", repr(USER))
           .replace("SMTP_PASSWORD", repr(PASSWORD)).replace("SMTP_CA", repr(str(smtp.cert))))
    master = start_live_master(tmp_path_factory.mktemp("e2e-mail") / "master", cfg,
                               e2e_db_url)
    master.start_worker("w1", "pw1")
    try:
        yield master
    finally:
        stop_live_master(master)


def test_change_to_mail(live, smtp):
    def following() -> bool:
        with live.db.read() as conn:
            return conn.execute(sa.select(consumer_cursors.c.last_event_id).where(
                consumer_cursors.c.consumer == "notifier.mail")).scalar() is not None

    wait_for(following, 60, what="the daemon's mail notifier to start")
    resp = requests.post(live.url + "/change_hook/base", timeout=10, data={
        "author": "carol", "comments": "break the build", "revision": "feed01",
        "branch": "main", "files": '["a.c"]'})
    assert resp.status_code == 202, resp.text
    (mail,) = smtp.wait_for_mail("buildbot@example.org", 1, timeout=90)
    assert mail.tls and mail.auth == USER
    assert mail["Subject"] == "buildbot failure in Mail E2E on broken"
    assert mail["To"] == "carol@example.org"
    body = mail.body()
    assert body.startswith("The Buildbot has detected a failed build on builder broken "
                           "while building Mail E2E. Full details are available at:\n"
                           f"    {live.url}/builders/broken/builds/0\n")
    assert "Build Source Stamp: [branch main] feed01\nBlamelist: carol\n" in body
    assert mail.attachments()["compile.stdio"] == ("text/plain", "oops\n")

    def recorded():  # type: ignore[no-untyped-def]
        data = live.get_json("/json/notifications")
        rows = (data or {}).get("notifiers", {}).get("mail", [])
        return rows if rows and rows[0]["outcome"] == "sent" else None

    (row,) = wait_for(recorded, 30, what="the delivery on /json/notifications")
    assert row["what"] == "broken #0 (failure)"
    assert row["recipients"] == ["carol@example.org"]
    assert row["message_id"] == mail.message_id
    assert row["answer"].startswith("250 ")
    wait_for(lambda: (live.get_json("/json/builders/fine/builds/-1") or {})
             .get("results") == 0, 60, what="the passing build")
    assert len(smtp.received("buildbot@example.org")) == 1  # 'failing' only
