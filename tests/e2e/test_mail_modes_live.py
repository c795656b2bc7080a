"""The MailNotifier mode table on real builds: three notifiers with different modes in one
master.cfg, one builder forced through the web form six times (pass, fail, fail, exception,
pass, warnings) on a real worker, the exception made by pressing "stop" while a step sleeps;
the real ``bbweb master`` daemon mails a real SMTP server, and each notifier sends exactly
the mails its mode asks for, in build order."""

from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa

from bbweb.db.schema import consumer_cursors
from bbweb.engine.events import latest_event_id
from tests.e2e.conftest import Browser, start_live_master, stop_live_master, wait_for
from tests.support.smtpd import SmtpServer

# One step fails or sleeps as the forced build's 'outcome' property says; the second step
# only warns when it fails (flunkOnFailure=False, warnOnFailure=True), which makes WARNINGS.
CFG = r"""
from bbweb.config import *
from bbweb.mastercfg.authz import Authz
from bbweb.status.mail import MailNotifier
c = BuildmasterConfig = {}
c['title'] = 'Mail Modes'
c['buildbotURL'] = 'http://127.0.0.1:PORT/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('w1', 'pw1')]
f = BuildFactory([
    ShellCommand(name='compile', descriptionDone=['compile'], command=Interpolate(
        'case %(prop:outcome)s in fail) exit 1;; hang) echo hanging; exec sleep 300;; esac')),
    ShellCommand(name='lint', descriptionDone=['lint'], flunkOnFailure=False,
                 warnOnFailure=True, command=Interpolate('test %(prop:outcome)s != warn')),
])
c['builders'] = [BuilderConfig(name='flaky', slavenames=['w1'], factory=f)]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['flaky'], properties=[
    ChoiceStringParameter('outcome', choices=['pass', 'fail', 'warn', 'hang'],
                          default='pass')])]
mail = dict(relayhost='127.0.0.1', smtpPort=SMTP_PORT, sendToInterestedUsers=False,
            extraRecipients=['list@example.org'])
c['status'] = [WebStatus(http_port=PORT, authz=Authz(default_action=True)),
               MailNotifier(name='onchange', fromaddr='change@example.org',
                            mode=('change',), **mail),
               MailNotifier(name='onproblem', fromaddr='problem@example.org',
                            mode=('problem',), **mail),
               MailNotifier(name='every', fromaddr='every@example.org', mode='all', **mail)]
"""

NOTIFIERS = {"onchange": "change@example.org", "onproblem": "problem@example.org",
             "every": "every@example.org"}

# (the force form's outcome, the build's result word)
SEQUENCE = [("pass", "success"), ("fail", "failure"), ("fail", "failure"),
            ("hang", "exception"), ("pass", "success"), ("warn", "warnings")]

EXPECTED = {
    # a result different from the previous build's; never the first build
    "onchange": [1, 3, 4, 5],
    # a failure after a build that did not fail
    "onproblem": [1],
    # 'all' is failing, passing, warnings and exception: every build here
    "every": [0, 1, 2, 3, 4, 5],
}


@pytest.fixture(scope="module")
def smtp(tmp_path_factory, e2e_db_url):  # type: ignore[no-untyped-def]
    """One server per live master (per database), so each sees only its own mail."""
    server = SmtpServer("plain", tmp_path_factory.mktemp("e2e-modes-smtp")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory, e2e_db_url, smtp):  # type: ignore[no-untyped-def]
    master = start_live_master(tmp_path_factory.mktemp("e2e-modes") / "master",
                               CFG.replace("SMTP_PORT", str(smtp.port)), e2e_db_url)
    master.start_worker("w1", "pw1")
    try:
        yield master
    finally:
        stop_live_master(master)


def cursor(live, name: str) -> int | None:  # type: ignore[no-untyped-def]
    with live.db.read() as conn:
        return conn.execute(sa.select(consumer_cursors.c.last_event_id).where(
            consumer_cursors.c.consumer == f"notifier.{name}")).scalar()


def result_of(live, number: int) -> int | None:  # type: ignore[no-untyped-def]
    build = live.get_json(f"/json/builders/flaky/builds/{number}")
    if not build or build.get("times", [None, None])[1] is None:
        return None
    return build.get("results")


def says_hanging(live, number: int) -> bool:  # type: ignore[no-untyped-def]
    """Whether the compile step's log says it went to sleep. The text of a running log is
    streamed as it grows (as ``curl`` on it would show), so read only until the word."""
    log = f"{live.url}/builders/flaky/builds/{number}/steps/compile/logs/stdio/text"
    try:
        with requests.get(log, stream=True, timeout=10) as resp:
            if resp.status_code != 200:  # the build or its step has not started yet
                return False
            seen = b""
            for piece in resp.iter_content(chunk_size=None):
                seen += piece
                if b"hanging" in seen:
                    return True
    except (requests.ConnectionError, requests.Timeout):  # nothing new for a while
        pass
    return False


def run(live, web: Browser, number: int, outcome: str) -> None:  # type: ignore[no-untyped-def]
    """Force build ``number`` with ``outcome`` and wait for it to finish (stopping it
    through the web form while it sleeps, for 'hang')."""
    web.post("/builders/flaky", "/builders/flaky/force",
             {"forcescheduler": "force", "outcome": outcome})
    if outcome == "hang":
        wait_for(lambda: says_hanging(live, number), 60,
                 what=f"build #{number}'s compile step to sleep")
        web.post(f"/builders/flaky/builds/{number}",
                 f"/builders/flaky/builds/{number}/stop", {"comments": "stop it"})
    wait_for(lambda: result_of(live, number) is not None, 60,
             what=f"build #{number} ({outcome}) to finish")


def test_each_mode_mails_its_builds(live, smtp):
    wait_for(lambda: all(cursor(live, name) is not None for name in NOTIFIERS), 60,
             what="the daemon's three mail notifiers to start")
    web = Browser(live.url)
    for number, (outcome, _word) in enumerate(SEQUENCE):
        run(live, web, number, outcome)
    words = [word for _outcome, word in SEQUENCE]
    builds = [live.get_json(f"/json/builders/flaky/builds/{n}") for n in range(len(SEQUENCE))]
    # SUCCESS, FAILURE, FAILURE, EXCEPTION, SUCCESS, WARNINGS
    assert [b["results"] for b in builds] == [0, 2, 2, 4, 0, 1], [b["text"] for b in builds]

    # every notifier has read past the last build before its mail is counted
    with live.db.read() as conn:
        last = latest_event_id(conn)
    wait_for(lambda: all((cursor(live, name) or 0) >= last for name in NOTIFIERS), 60,
             what="every notifier to handle the last build")
    for name, sender in NOTIFIERS.items():
        mails = smtp.wait_for_mail(sender, len(EXPECTED[name]), timeout=30)
        assert [m["Subject"] for m in mails] == [
            f"buildbot {words[n]} in Mail Modes on flaky" for n in EXPECTED[name]], name
        assert [m.body().split("/builders/flaky/builds/")[1].split("\n")[0]
                for m in mails] == [str(n) for n in EXPECTED[name]], name
        assert len({m.message_id for m in mails}) == len(mails), name
