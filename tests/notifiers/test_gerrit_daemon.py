"""GerritStatusPush run by the master daemon against a real OpenSSH server: enabled from
master.cfg or plugins.toml, and a Gerrit outage during which reviews wait, in order,
and afterwards arrive once each."""

from __future__ import annotations

import textwrap

from bbweb.status.builder import FAILURE, SUCCESS
from tests.daemon.conftest import saved_cursor
from tests.notifiers.conftest import MAIL_CFG, Clock, attempts, build
from tests.support.polling import wait_for

SHA = "4f2c8a0e9b7d6c5a4f3e2d1c0b9a8f7e6d5c4b3a"


def event_props(number: int) -> dict[str, object]:
    return {"event.change.id": f"I{number:040x}", "event.change.number": number,
            "event.change.project": "bbweb/core", "event.patchSet.number": 1,
            "event.patchSet.revision": f"{number:040x}"}


def with_gerrit(server, extra: str = "") -> str:  # type: ignore[no-untyped-def]
    args = server.notifier_args()
    return MAIL_CFG + textwrap.dedent(f"""
        from bbweb.status.status_gerrit import GerritStatusPush, defaultReviewCB
        c['status'].append(GerritStatusPush({args['server']!r}, {args['username']!r},
                                            port={args['port']},
                                            identity_file={args['identity_file']!r},
                                            known_hosts_file={args['known_hosts_file']!r},
                                            reviewCB=defaultReviewCB{extra}))
    """)


def following(master, name: str = "notifier.gerrit") -> None:  # type: ignore[no-untyped-def]
    wait_for(lambda: saved_cursor(master, name) is not None,
             what=f"{name} to take its place in the event stream")


def test_enabled_in_master_cfg(make_master, daemons, fake_gerrit):
    master = make_master(with_gerrit(fake_gerrit))
    d = daemons(master.basedir, holder="d")
    following(master)
    build(master, "runtests", FAILURE, Clock(), properties=event_props(77))
    (review,) = wait_for(fake_gerrit.reviews, what="the review")
    assert review["argv"] == [
        "gerrit", "review", "--project", "bbweb/core", "--message",
        "Buildbot finished compiling your patchset\non configuration: runtests\n"
        "The result is: FAILURE\n", "--label", "Verified=-1", f"{77:040x}"]
    assert d.stop() == 0


def test_enabled_in_plugins_toml(make_master, daemons, fake_gerrit):
    """Key files given in plugins.toml are relative to the master's directory."""
    master = make_master(MAIL_CFG)
    args = fake_gerrit.notifier_args()
    (master.basedir / "id_gerrit").write_bytes(fake_gerrit.identity_file.read_bytes())
    (master.basedir / "id_gerrit").chmod(0o600)
    (master.basedir / "plugins.toml").write_text(
        f'[notifiers]\ngerrit = {{ server = "127.0.0.1", username = "{args["username"]}", '
        f'port = {args["port"]}, identity_file = "id_gerrit", '
        f'known_hosts_file = "{args["known_hosts_file"]}", '
        'startCB = "tests.notifiers.test_gerrit_daemon:started" }\n')
    d = daemons(master.basedir, holder="d")
    following(master)
    build(master, "docs", SUCCESS, Clock(), properties=event_props(78))
    # the default without reviewCB or summaryCB: a summary per buildset; and startCB
    reviews = wait_for(lambda: len(fake_gerrit.reviews()) == 2 and fake_gerrit.reviews(),
                       what="the start message and the summary")
    assert [r["argv"][5] for r in reviews] == [
        "started docs",
        "Builder docs succeeded (build successful) - http://bb.example.org/builders/docs/"
        "builds/0"]
    assert d.stop() == 0


def started(builderName, build, arg):  # type: ignore[no-untyped-def]
    return f"started {builderName}"


OUTAGE_BUILDS = 6


def test_gerrit_down_then_back_every_review_once_in_order(make_master, daemons, fake_gerrit):
    master = make_master(with_gerrit(fake_gerrit))
    d = daemons(master.basedir, holder="d")
    following(master)
    fake_gerrit.stop()
    clock = Clock()
    for n in range(OUTAGE_BUILDS):
        build(master, "runtests", (FAILURE, SUCCESS)[n % 2], clock,
              properties=event_props(100 + n))
    wait_for(lambda: [r.outcome for r in attempts(master)].count("failed") >= 2,
             what="failed deliveries while Gerrit is down")
    fake_gerrit.start()
    wait_for(lambda: [r.build_number for r in attempts(master) if r.outcome == "sent"]
             == list(range(OUTAGE_BUILDS)), what="every review to be recorded as sent")
    assert d.stop() == 0
    reviews = fake_gerrit.reviews()
    assert [r["argv"][-1] for r in reviews] == [f"{100 + n:040x}"
                                                for n in range(OUTAGE_BUILDS)]
    assert [r["argv"][-2] for r in reviews] == ["Verified=-1", "Verified=1"] * 3
    rows = attempts(master)
    # while Gerrit was down only the first review was tried (again and again)
    assert {r.build_number for r in rows if r.outcome == "failed"} == {0}
    assert all("(exit 255)" in r.answer and "Connection refused" in r.answer
               for r in rows if r.outcome == "failed")
