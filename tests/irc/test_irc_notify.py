"""Announcements of real (engine-run) builds: subscriptions and transitions, colours,
NOTICE, private contacts, and hostile build text that must not reach the wire as more than
one line per message."""

from __future__ import annotations

import re

from bbweb.engine import builds as eb
from bbweb.engine.buildsets import create_buildset, create_sourcestamp
from bbweb.status.builder import FAILURE, SUCCESS
from tests.irc.conftest import start_bot
from tests.notifiers.conftest import Clock, change, run_pending
from tests.support.history import claim
from tests.support.ircd import CHANNEL


def texts(user, nick, mark, pattern="runtests"):  # type: ignore[no-untyped-def]
    return [m.text for m in user.messages_from(nick, mark) if pattern in m.text]


def test_subscriptions_and_transitions(make_master, daemons, ircd, users):
    alice = users()
    master, d, nick = start_bot(
        make_master, daemons, ircd, alice,
        ", notify_events=['started', 'failure', 'failureToSuccess'], categories=['core'], "
        "useColors=False")
    # categories limit what is listed, not what may be asked about
    assert alice.ask(nick, "list builders") == ["Configured builders: runtests [offline]"]
    assert alice.ask(nick, "status") == ["runtests: offline"]
    assert alice.ask(nick, "status docs") == ["docs: offline"]
    # as in 0.8, whoever talks to the bot privately gets the configured events there
    bob = users(join=False)
    assert bob.ask(nick, "hello", target=nick) == ["yes?"]
    clock = Clock()
    mark, bmark = alice.mark(), bob.mark()
    change(master, clock, author="carol <carol@example.org>", revision="1234567890ab")
    run_pending(master, FAILURE, clock)
    change(master, clock, author="dave", revision="bbbbbbbbbbbb")
    run_pending(master, SUCCESS, clock)  # failureToSuccess
    change(master, clock, author="erin", revision="cccccccccccc")
    run_pending(master, SUCCESS, clock)  # successToSuccess: only "started"
    want = [
        "build #0 of runtests started (including [1234567890ab])",
        "build #0 of runtests is complete: Failure [failed compile]  Build details are at "
        "http://bb.example.org/builders/runtests/builds/0  blamelist: carol "
        "<carol@example.org>",
        "build #1 of runtests started (including [bbbbbbbbbbbb])",
        "build #1 of runtests is complete: Success [build successful]  Build details are at "
        "http://bb.example.org/builders/runtests/builds/1",
        "build #2 of runtests started (including [cccccccccccc])",
    ]
    alice.wait_for(lambda _ln: len(texts(alice, nick, mark)) >= len(want), what="5 lines",
                   after=mark)
    assert texts(alice, nick, mark) == want
    assert not texts(alice, nick, mark, "docs")  # category 'doc' is not announced
    bob.wait_for(lambda _ln: len(texts(bob, nick, bmark)) >= len(want), what="5 lines",
                 after=bmark)
    assert texts(bob, nick, bmark) == want
    assert d.stop() == 0


def test_started_with_more_than_two_changes(make_master, daemons, ircd, users):
    """0.8 named at most two of a build's revisions and counted the rest."""
    alice = users()
    master, d, nick = start_bot(
        make_master, daemons, ircd, alice, ", notify_events=['started']",
        extra_cfg="c['schedulers'] = [ForceScheduler(name='force', builderNames=['runtests'])]")
    clock = Clock()
    revisions = ["aaaa1111", "bbbb2222", "cccc3333", "dddd4444"]
    changeids = [change(master, clock, revision=r) for r in revisions]
    mark = alice.mark()
    for count in (3, 4):
        with master.db.write() as conn:
            ssid = create_sourcestamp(conn, revision=revisions[count - 1],
                                      changeids=changeids[:count])
            create_buildset(conn, master.config, sourcestampids=[ssid],
                            builder_names=["runtests"], reason="several changes")
        claim(master, "slave1", clock())
    alice.wait_for(lambda _ln: len(texts(alice, nick, mark)) >= 2, what="2 lines", after=mark)
    assert texts(alice, nick, mark) == [
        "build #0 of runtests started (including [aaaa1111, bbbb2222] and 1 more)",
        "build #1 of runtests started (including [aaaa1111, bbbb2222] and 2 more)"]
    assert d.stop() == 0


def test_colours_notice_revisions_and_private_contacts(make_master, daemons, ircd, users):
    alice = users()
    bob = users(join=False)
    master, d, nick = start_bot(
        make_master, daemons, ircd, alice,
        f", notify_events={{'finished': 1}}, noticeOnChannel=True, useRevisions=True, "
        f"pm_to_nicks=[{bob.nick!r}], showBlameList=False")
    clock = Clock()
    amark, bmark = alice.mark(), bob.mark()
    change(master, clock, author="carol", revision="1234567890ab")
    run_pending(master, FAILURE, clock)
    want = ("build containing revision(s) [1234567] on runtests is complete: Failure "
            "[\x034failed compile\x03]  Build details are at "
            "http://bb.example.org/builders/runtests/builds/0")
    line = alice.wait_for_text(nick, want, after=amark)
    assert line.kind == "pubnotice"
    line = bob.wait_for_text(nick, want, after=bmark)
    assert line.kind == "privmsg"  # private messages are never notices
    assert d.stop() == 0


HOSTILE = ("x\r\nPRIVMSG #other :pwned\r\n\x01ACTION dances\x01\x1b[31m\u2028" +
           "A" * 10_000)


def test_hostile_strings_never_leave_one_line(make_master, daemons, ircd, users):
    alice = users()
    other = users(join=False)
    other.join("#other", "")
    master, d, nick = start_bot(
        make_master, daemons, ircd, alice,
        ", notify_events=['started', 'finished'], useColors=False")
    clock = Clock()
    raw_mark = len(alice.raw)
    mark = alice.mark()
    change(master, clock, author=HOSTILE, revision=HOSTILE[:200], branch="main\r\nQUIT :x")
    claimed = claim(master, "slave1", clock())
    with master.db.write() as conn:
        eb.finish_build(conn, master.config, claimed.buildid, now=clock(), result=FAILURE,
                        text=[HOSTILE])
    claimed = claim(master, "slave1", clock())  # docs, for the same change
    alice.wait_for_text(nick, re.compile(f"^build #{claimed.number} of docs started"),
                        after=mark)
    lines = alice.messages_from(nick, mark)
    assert len(lines) == 3  # started, finished, started: one message each
    assert all(ln.kind == "pubmsg" and ln.target == CHANNEL for ln in lines)
    for ln in lines:
        assert not re.search(r"[\x00-\x1f\x7f]", ln.text), ln.text
        assert len(ln.text.encode()) <= 400
    assert lines[1].text.startswith("build #0 of runtests is complete: Failure [x PRIVMSG "
                                    "#other :pwned ACTION dances")
    assert lines[1].text.endswith("...")
    # on the wire: one PRIVMSG line per message, nothing else from the bot
    from_bot = [r for r in alice.raw[raw_mark:] if r.startswith(f":{nick}!")]
    assert len(from_bot) == 3 and all(f" PRIVMSG {CHANNEL} :" in r for r in from_bot)
    assert not [ln for ln in other.lines if ln.nick == nick or ln.target == "#other"
                and ln.kind != "join"]
    assert not [ln for ln in alice.lines[mark:] if ln.kind in ("ctcp", "action")]
    assert d.stop() == 0
