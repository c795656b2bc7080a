"""GerritStatusPush driven by builds made through the engine, talking to a real OpenSSH
server whose forced command records the command line Gerrit would receive: the exact
``gerrit review`` for start, success, failure, warnings and summaries, both label styles
(before and from Gerrit 2.6), hostile values, refusals and an unreachable server."""

from __future__ import annotations

import pytest

from bbweb.plugins.notifiers.base import DeliveryError
from bbweb.status.builder import FAILURE, SUCCESS, WARNINGS
from bbweb.status.status_gerrit import GerritStatusPush, defaultReviewCB
from tests.notifiers.conftest import T0, Clock, attempts, build, change, feed, run_pending
from tests.support.history import claim, force, run

SHA = "4f2c8a0e9b7d6c5a4f3e2d1c0b9a8f7e6d5c4b3a"
URL = "http://bb.example.org/"
# what Buildbot's Gerrit change source gave a change from a patchset-created event
EVENT = {"event.change.id": "I8473b95934b5732ac55d26311a706c9c2bde9940",
         "event.change.number": 1234, "event.change.project": "bbweb/core",
         "event.change.branch": "master", "event.patchSet.number": 2,
         "event.patchSet.revision": SHA, "event.type": "patchset-created"}


def review_text(builder: str, result: str) -> str:
    return (f"Buildbot finished compiling your patchset\non configuration: {builder}\n"
            f"The result is: {result}\n")


def quoted(text: str) -> str:
    """How the command line carries a message (POSIX single quotes)."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def gerrit(server, **kw):  # type: ignore[no-untyped-def]
    return GerritStatusPush(**{**server.notifier_args(), **kw})


def test_a_review_per_build_with_labels_from_gerrit_2_6(mail_master, fake_gerrit):
    fake_gerrit.set_version("2.9.4")
    notifier = gerrit(fake_gerrit, reviewCB=defaultReviewCB)
    clock = Clock()
    change(mail_master, clock, properties=EVENT)
    run_pending(mail_master, SUCCESS, clock)  # runtests, then docs
    feed(notifier, mail_master)
    commands = [c["raw"] for c in fake_gerrit.commands()]
    assert commands == [
        "gerrit version",  # asked once: the answer is kept
        "gerrit review --project bbweb/core --message "
        f"{quoted(review_text('runtests', 'SUCCESS'))} --label Verified=1 {SHA}",
        "gerrit review --project bbweb/core --message "
        f"{quoted(review_text('docs', 'SUCCESS'))} --label Verified=1 {SHA}",
    ]
    assert fake_gerrit.reviews()[0]["argv"] == [
        "gerrit", "review", "--project", "bbweb/core", "--message",
        review_text("runtests", "SUCCESS"), "--label", "Verified=1", SHA]
    rows = attempts(mail_master)
    assert [(r.outcome, r.builder, r.build_number, r.what) for r in rows] == [
        ("sent", "runtests", 0, "runtests #0 review (Verified +1)"),
        ("sent", "docs", 0, "docs #0 review (Verified +1)")]
    assert rows[0].answer == "OK"


def test_flags_before_gerrit_2_6_failure_and_warnings(mail_master, fake_gerrit):
    fake_gerrit.set_version("2.5.2")
    notifier = gerrit(fake_gerrit, reviewCB=defaultReviewCB)
    clock = Clock()
    change(mail_master, clock, properties=EVENT)
    run_pending(mail_master, FAILURE, clock)
    change(mail_master, clock, properties=EVENT)
    run_pending(mail_master, WARNINGS, clock)
    feed(notifier, mail_master)
    assert [c["raw"] for c in fake_gerrit.commands()] == [
        "gerrit version",
        "gerrit review --project bbweb/core --message "
        f"{quoted(review_text('runtests', 'FAILURE'))} --verified -1 {SHA}",
        "gerrit review --project bbweb/core --message "
        f"{quoted(review_text('docs', 'FAILURE'))} --verified -1 {SHA}",
        "gerrit review --project bbweb/core --message "
        f"{quoted(review_text('runtests', 'WARNINGS'))} --verified -1 {SHA}",
        "gerrit review --project bbweb/core --message "
        f"{quoted(review_text('docs', 'WARNINGS'))} --verified -1 {SHA}",
    ]


def code_review_cb(builderName, build, result, status, arg):  # type: ignore[no-untyped-def]
    return f"{arg}: {status.getURLForThing(build)}", 0, 2 if result == SUCCESS else -2


@pytest.mark.parametrize(("version", "votes"), [("2.5", ["--code-review", "2"]),
                                                ("2.6-rc1", ["--label", "Code-Review=2"]),
                                                ("3.9.1-56-g0123abc", ["--label",
                                                                       "Code-Review=2"])])
def test_code_review_vote_in_both_styles(mail_master, fake_gerrit, version, votes):
    fake_gerrit.set_version(version)
    notifier = gerrit(fake_gerrit, reviewCB=code_review_cb, reviewArg="Looks good")
    clock = Clock()
    build(mail_master, "runtests", SUCCESS, clock, properties=EVENT)
    feed(notifier, mail_master)
    (review,) = fake_gerrit.reviews()
    assert review["argv"] == ["gerrit", "review", "--project", "bbweb/core", "--message",
                              f"Looks good: {URL}builders/runtests/builds/0", *votes, SHA]


def start_cb(builderName, build, arg):  # type: ignore[no-untyped-def]
    return f"Buildbot started compiling your patchset\non configuration: {builderName}\n{arg}"


def test_start_messages_carry_no_votes(mail_master, fake_gerrit):
    """0.8 could not send them (the patchset was known only after the checkout); here
    the change's properties are the build's from its start."""
    notifier = gerrit(fake_gerrit, startCB=start_cb, startArg="(see the waterfall)",
                      reviewCB=None)
    clock = Clock()
    change(mail_master, clock, properties=EVENT)
    run_pending(mail_master, FAILURE, clock)
    feed(notifier, mail_master)
    assert [c["argv"] for c in fake_gerrit.commands()] == [
        ["gerrit", "review", "--project", "bbweb/core", "--message",
         f"Buildbot started compiling your patchset\non configuration: {name}\n"
         "(see the waterfall)", SHA] for name in ("runtests", "docs")]
    assert [r.what for r in attempts(mail_master)] == ["runtests #0 start", "docs #0 start"]


def test_default_is_one_summary_per_buildset(mail_master, fake_gerrit):
    """Given neither reviewCB nor summaryCB, 0.8 posted one summary when the buildset
    was complete, about the first build's patchset."""
    notifier = gerrit(fake_gerrit)
    clock = Clock()
    change(mail_master, clock, properties=EVENT)
    run_pending(mail_master, SUCCESS, clock)
    change(mail_master, clock, properties=EVENT)
    run_pending(mail_master, FAILURE, clock)
    feed(notifier, mail_master)
    (first, second) = fake_gerrit.reviews()
    assert first["argv"] == [
        "gerrit", "review", "--project", "bbweb/core", "--message",
        f"Builder docs succeeded (build successful) - {URL}builders/docs/builds/0\n\n"
        f"Builder runtests succeeded (build successful) - {URL}builders/runtests/builds/0",
        "--label", "Verified=1", SHA]
    assert second["argv"] == [
        "gerrit", "review", "--project", "bbweb/core", "--message",
        f"Builder docs failed (failed compile) - {URL}builders/docs/builds/1\n\n"
        f"Builder runtests failed (failed compile) - {URL}builders/runtests/builds/1",
        "--label", "Verified=-1", SHA]
    assert [(r.what, r.buildsetid is not None, r.builder) for r in attempts(mail_master)] \
        == [("buildset 1 summary (Verified +1)", True, None),
            ("buildset 2 summary (Verified -1)", True, None)]


def summary_cb(buildInfoList, results, status, arg):  # type: ignore[no-untyped-def]
    names = ",".join(f"{i['name']}={i['result']}" for i in buildInfoList)
    return f"{arg} {results}: {names}", 0, 1


def test_own_summary_callback_and_review_together(mail_master, fake_gerrit):
    fake_gerrit.set_version("2.16")
    notifier = gerrit(fake_gerrit, reviewCB=defaultReviewCB, summaryCB=summary_cb,
                      summaryArg="all done,")
    clock = Clock()
    change(mail_master, clock, properties=EVENT)
    run_pending(mail_master, WARNINGS, clock)
    feed(notifier, mail_master)
    messages = [r["argv"][5] for r in fake_gerrit.reviews()]
    assert messages == [review_text("runtests", "WARNINGS"), review_text("docs", "WARNINGS"),
                        "all done, warnings: docs=1,runtests=1"]
    assert fake_gerrit.reviews()[2]["argv"][6:] == ["--label", "Code-Review=1", SHA]


def test_review_cb_none_alone_sends_nothing(mail_master, fake_gerrit):
    notifier = gerrit(fake_gerrit, reviewCB=None)
    clock = Clock()
    change(mail_master, clock, properties=EVENT)
    run_pending(mail_master, SUCCESS, clock)
    feed(notifier, mail_master)
    assert fake_gerrit.commands() == []
    assert attempts(mail_master) == []


HOSTILE_PROJECT = "core'; rm -rf ~ #\n--submit --label Code-Review=+2 \"x\" $(id)"
HOSTILE_BRANCH = "feature/'; touch /tmp/pwned; echo '\n--abandon"


def branch_cb(builderName, build, result, status, arg):  # type: ignore[no-untyped-def]
    return f"built {build.getProperty('branch')}", 0, 0


def test_hostile_values_arrive_as_one_literal_argument_each(mail_master, fake_gerrit):
    notifier = gerrit(fake_gerrit, reviewCB=branch_cb)
    clock = Clock()
    change(mail_master, clock, branch=HOSTILE_BRANCH,
           properties={**EVENT, "event.change.project": HOSTILE_PROJECT})
    run_pending(mail_master, SUCCESS, clock)
    feed(notifier, mail_master)
    reviews = fake_gerrit.reviews()
    assert [r["argv"] for r in reviews] == [
        ["gerrit", "review", "--project", HOSTILE_PROJECT, "--message",
         f"built {HOSTILE_BRANCH}", SHA]] * 2
    assert [c["argv"][:2] for c in fake_gerrit.commands()] == [["gerrit", "review"]] * 2


def test_a_revision_that_is_not_a_commit_is_not_sent(mail_master, fake_gerrit):
    """The revision ends the command, where Gerrit would read '--submit' as an option."""
    notifier = gerrit(fake_gerrit, reviewCB=defaultReviewCB)
    clock = Clock()
    build(mail_master, "runtests", SUCCESS, clock,
          properties={**EVENT, "event.patchSet.revision": "--submit"})
    feed(notifier, mail_master)
    assert fake_gerrit.commands() == []
    (row,) = attempts(mail_master)
    assert row.outcome == "skipped"
    assert row.answer == ("event.patchSet.revision '--submit' is neither a commit id nor "
                          "'<change>,<patchset>'")


def test_a_build_of_no_gerrit_change_is_neither_sent_nor_recorded(mail_master, fake_gerrit):
    """On a master that also builds other sources, those builds are not Gerrit's business:
    no review, and no row on /notifications for each of them."""
    notifier = gerrit(fake_gerrit, startCB=start_cb, reviewCB=defaultReviewCB)
    build(mail_master, "runtests", SUCCESS, Clock(), revision="abc123")
    feed(notifier, mail_master)
    assert fake_gerrit.commands() == []
    assert attempts(mail_master) == []


def test_a_half_named_change_is_recorded_as_skipped_with_why(mail_master, fake_gerrit):
    notifier = gerrit(fake_gerrit, reviewCB=defaultReviewCB)
    build(mail_master, "runtests", SUCCESS, Clock(),
          properties={"event.change.number": "1234", "event.change.project": "tools"})
    feed(notifier, mail_master)
    assert fake_gerrit.commands() == []
    (row,) = attempts(mail_master)
    assert (row.outcome, row.what) == ("skipped", "runtests #0 review (Verified +1)")
    assert row.answer.startswith("no patchset: none of event.patchSet.revision, got_revision")


def test_checkout_step_properties_name_the_patchset(mail_master, fake_gerrit):
    """A Gerrit checkout step sets gerrit_branch and got_revision; the project comes from
    the source stamp. Before the checkout, the requested revision stands in."""
    notifier = gerrit(fake_gerrit, startCB=start_cb, reviewCB=defaultReviewCB)
    force(mail_master, "runtests", project="tools/bbweb", revision="0badc0de",
          properties={"gerrit_branch": "refs/changes/34/1234/2"})
    claimed = claim(mail_master, "slave1", T0)
    after = feed(notifier, mail_master)  # the start, as the daemon sees it at once
    run(mail_master, claimed.buildid, {"compile": 1}, T0 + 1, props={"got_revision": SHA})
    feed(notifier, mail_master, after)
    assert [(r["argv"][3], r["argv"][-1]) for r in fake_gerrit.reviews()] == [
        ("tools/bbweb", "0badc0de"), ("tools/bbweb", SHA)]


def test_change_and_patchset_numbers_when_no_revision_is_known(mail_master, fake_gerrit):
    notifier = gerrit(fake_gerrit, reviewCB=defaultReviewCB)
    props = {k: v for k, v in EVENT.items() if k != "event.patchSet.revision"}
    build(mail_master, "runtests", SUCCESS, Clock(), properties=props)
    feed(notifier, mail_master)
    assert fake_gerrit.reviews()[0]["argv"][-1] == "1234,2"


def test_repo_downloads_get_one_review_each(mail_master, fake_gerrit):
    notifier = gerrit(fake_gerrit, reviewCB=defaultReviewCB)
    other = "0123456789abcdef0123456789abcdef01234567"
    build(mail_master, "runtests", SUCCESS, Clock(), properties={
        "repo_downloads": ["platform/build 1234/2", "platform/libc 1240/1"],
        "repo_downloaded": f"1234/2 {SHA} 1240/1 {other}"})
    feed(notifier, mail_master)
    assert [(r["argv"][3], r["argv"][-1]) for r in fake_gerrit.reviews()] == [
        ("platform/build", SHA), ("platform/libc", other)]


def test_a_refusal_is_recorded_with_gerrit_s_words_and_not_retried(mail_master, fake_gerrit):
    notifier = gerrit(fake_gerrit, reviewCB=defaultReviewCB)
    fake_gerrit.refuse('fatal: "4f2c8a0" no such change\n')
    clock = Clock()
    build(mail_master, "runtests", SUCCESS, clock, properties=EVENT)
    after = feed(notifier, mail_master)
    (row,) = attempts(mail_master)
    assert row.outcome == "rejected"
    assert row.answer == 'Gerrit refused the review (exit 1): fatal: "4f2c8a0" no such change'
    fake_gerrit.clear()
    build(mail_master, "runtests", SUCCESS, clock, properties=EVENT)
    feed(notifier, mail_master, after)
    assert len(fake_gerrit.reviews()) == 1
    assert [r.outcome for r in attempts(mail_master)] == ["rejected", "sent"]


def test_a_server_that_is_not_gerrit_is_a_refusal(mail_master, fake_gerrit):
    fake_gerrit.set_version("")
    notifier = gerrit(fake_gerrit, reviewCB=defaultReviewCB)
    build(mail_master, "runtests", SUCCESS, Clock(), properties=EVENT)
    feed(notifier, mail_master)
    assert fake_gerrit.reviews() == []
    (row,) = attempts(mail_master)
    assert row.outcome == "rejected"
    assert "did not answer 'gerrit version' like Gerrit: 'gerrit version'" in row.answer


def test_server_down_fails_and_the_retry_delivers_once(mail_master, fake_gerrit):
    notifier = gerrit(fake_gerrit, reviewCB=defaultReviewCB)
    build(mail_master, "runtests", SUCCESS, Clock(), properties=EVENT)
    fake_gerrit.stop()
    with pytest.raises(DeliveryError, match="Connection refused"):
        feed(notifier, mail_master)
    (row,) = attempts(mail_master)
    assert row.outcome == "failed"
    assert "ssh could not run the command on" in row.answer and "(exit 255)" in row.answer
    fake_gerrit.start()
    feed(notifier, mail_master)  # the daemon hands the same event again
    feed(notifier, mail_master)  # and once more after a crash: nothing sent twice
    assert len(fake_gerrit.reviews()) == 1
    assert [r.outcome for r in attempts(mail_master)] == ["failed", "sent"]


def test_an_unknown_host_key_is_not_accepted(mail_master, fake_gerrit, tmp_path):
    """BatchMode: ssh never asks, and a server whose key is not known is not trusted."""
    other = tmp_path / "known_hosts"
    other.write_text("")
    notifier = gerrit(fake_gerrit, reviewCB=defaultReviewCB, known_hosts_file=str(other))
    build(mail_master, "runtests", SUCCESS, Clock(), properties=EVENT)
    with pytest.raises(DeliveryError, match="Host key verification failed"):
        feed(notifier, mail_master)
    assert fake_gerrit.commands() == []


def long_cb(builderName, build, result, status, arg):  # type: ignore[no-untyped-def]
    return "x" * 20000, 0, 0


def test_a_very_long_message_is_cut_saying_so(mail_master, fake_gerrit):
    notifier = gerrit(fake_gerrit, reviewCB=long_cb)
    build(mail_master, "runtests", SUCCESS, Clock(), properties=EVENT)
    feed(notifier, mail_master)
    (review,) = fake_gerrit.reviews()
    assert review["argv"][5] == "x" * 16384 + "\n[message cut: it was 20000 characters long]"


def bad_cb(builderName, build, result, status, arg):  # type: ignore[no-untyped-def]
    return "only a message"


def test_a_callback_returning_nonsense_is_recorded_as_an_error(mail_master, fake_gerrit):
    notifier = gerrit(fake_gerrit, reviewCB=bad_cb)
    build(mail_master, "runtests", SUCCESS, Clock(), properties=EVENT)
    feed(notifier, mail_master)
    (row,) = attempts(mail_master)
    assert row.outcome == "error"
    assert row.answer == ("ValueError: reviewCB returned 'only a message'; it must return "
                          "(message, verified, reviewed)")
    assert fake_gerrit.commands() == []
