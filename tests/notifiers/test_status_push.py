"""HttpStatusPush run by the master daemon against a receiver process: 0.8's packets event
by event, an outage and a daemon restart that lose and repeat nothing, a daemon killed
with SIGKILL during a push."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from bbweb.engine import actions_slaves
from bbweb.engine import slaves as es
from bbweb.status.builder import FAILURE, SUCCESS, WARNINGS
from tests.daemon.conftest import FAST, saved_cursor
from tests.notifiers.conftest import MAIL_CFG, Clock, attempts, build, change
from tests.support.polling import wait_for
from tests.support.push_receiver import PushReceiver

REPO = Path(__file__).resolve().parents[2]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


def push_cfg(url: str, **options: Any) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in
                     {"bufferDelay": 0.05, "retryDelay": 0.1, **options}.items())
    return MAIL_CFG + textwrap.dedent(f"""
        from bbweb.status.status_push import HttpStatusPush
        c['status'].append(HttpStatusPush(serverUrl={url!r}, {args}))
    """)


def names(packets: list[dict[str, Any]]) -> list[str]:
    return [p["event"] for p in packets]


def ids_of(packets: list[dict[str, Any]]) -> list[int]:
    return [p["id"] for p in packets]


def wait_for_event(receiver: PushReceiver, name: str, count: int = 1,
                   timeout: float = 30) -> list[dict[str, Any]]:
    return receiver.wait_for_packets(
        lambda ps: ps if names(ps).count(name) >= count else None, timeout,
        what=f"{count} {name} packet(s)")


def test_every_event_packet_by_packet(make_master, daemons, receiver):
    master = make_master(push_cfg(receiver.url))
    d = daemons(master.basedir, holder="d")
    start = wait_for_event(receiver, "builderChangedState", 2)
    assert names(start) == ["start", "builderAdded", "builderChangedState", "builderAdded",
                            "builderChangedState"]
    first = start[0]
    assert first["payload"] == {"status": {"title": "Mail Project",
                                           "titleURL": "http://buildbot.net/",
                                           "buildbotURL": "http://bb.example.org/"}}
    assert first["project"] == "Mail Project"
    assert TIMESTAMP.match(first["timestamp"]) and TIMESTAMP.match(first["started"])
    added = start[1]["payload"]
    assert added["builderName"] == "runtests"
    assert added["builder"]["category"] == "core" and added["builder"]["slaves"] == ["slave1"]
    assert start[2]["payload"] == {"builderName": "runtests", "state": "offline"}
    seen = len(start)

    clock = Clock(time.time())  # real times: the daemon's liveness check sees the slave
    with master.db.write() as conn:
        es.slave_connected(conn, "slave1", {"host": "box", "version": "0.8.9"},
                           now=clock())
    change(master, clock, author="alice", comments="fix", revision="abc123",
           branch="main")
    build(master, "runtests", SUCCESS, clock)
    build(master, "docs", WARNINGS, clock)
    with master.db.write() as conn:
        actions_slaves.set_paused(conn, "slave1", True, "admin")
        actions_slaves.set_paused(conn, "slave1", False, "admin")
        sid = es.slave_id(conn, "slave1")
        es.mark_disconnected(conn, sid, "slave1")
    packets = wait_for_event(receiver, "slaveDisconnected")[seen:]
    packets = packets[:names(packets).index("slaveDisconnected") + 3]
    one_build = ["requestSubmitted", "buildsetSubmitted", "builderChangedState",
                 "buildStarted", "stepStarted", "stepFinished", "stepStarted",
                 "stepFinished", "buildFinished", "builderChangedState"]
    assert names(packets) == [
        "slaveConnected", "builderChangedState", "builderChangedState", "changeAdded",
        # the change's buildset: a request for each builder
        "requestSubmitted", "requestSubmitted", "buildsetSubmitted", *one_build, *one_build,
        "slavePaused", "slaveUnpaused", "slaveDisconnected", "builderChangedState",
        "builderChangedState"]
    assert ids_of(packets) == sorted(set(ids_of(packets)))  # increasing, no repeats
    by_name: dict[str, list[dict[str, Any]]] = {}
    for p in packets:
        by_name.setdefault(p["event"], []).append(p["payload"])

    slave = by_name["slaveConnected"][0]["slave"]
    assert slave["name"] == "slave1" and slave["host"] == "box" and slave["connected"]
    assert by_name["builderChangedState"][0] == {"builderName": "runtests", "state": "idle"}
    ch = by_name["changeAdded"][0]["change"]
    assert (ch["who"], ch["revision"], ch["branch"], ch["comments"]) == (
        "alice", "abc123", "main", "fix")
    assert ch["files"] == [{"name": "src/a.c"}]
    req = by_name["requestSubmitted"][0]["request"]
    assert req["builderName"] in ("runtests", "docs")
    bs = by_name["buildsetSubmitted"][0]["buildset"]
    assert bs["bsid"] >= 1 and isinstance(bs["submitted_at"], str)

    started = by_name["buildStarted"][0]["build"]
    assert started["builderName"] == "runtests"
    assert started["number"] == 0  # 0.8's filter dropped build #0's number
    assert "results" not in started and started["times"][1] is None
    assert [s["name"] for s in started["steps"]] == ["compile", "lint"]
    assert not any(s.get("isStarted") for s in started["steps"])

    step1 = by_name["stepStarted"][0]
    assert step1["step"]["name"] == "compile" and step1["step"]["isStarted"] is True
    assert "isFinished" not in step1["step"]  # False, filtered as in 0.8
    assert ["buildnumber", 0, "Build"] in step1["properties"]
    done1 = by_name["stepFinished"][0]["step"]
    assert done1["name"] == "compile" and done1["isFinished"] is True
    assert done1["results"][0] == 0  # SUCCESS kept (0.8 dropped it)
    assert done1["step_number"] == 0

    finished = by_name["buildFinished"][0]["build"]
    assert (finished["number"], finished["results"]) == (0, 0)
    assert len(finished["times"]) == 2
    assert [s["results"][0] for s in finished["steps"]] == [0, 0]
    warned = by_name["buildFinished"][1]["build"]
    assert (warned["builderName"], warned["results"]) == ("docs", WARNINGS)
    assert by_name["builderChangedState"][2] == {"builderName": "runtests",
                                                 "state": "building"}
    assert by_name["slavePaused"] == [{"slavename": "slave1"}]
    assert by_name["slaveUnpaused"] == [{"slavename": "slave1"}]
    assert by_name["slaveDisconnected"] == [{"slavename": "slave1"}]
    assert by_name["builderChangedState"][-2:] == [
        {"builderName": "runtests", "state": "offline"},
        {"builderName": "docs", "state": "offline"}]

    for r in receiver.requests():
        assert r["headers"]["content-type"] == "application/x-www-form-urlencoded"
        assert r["headers"]["user-agent"].startswith("bbweb/")
        assert r["form"] == {}
    assert d.stop() == 0
    # the notifier's own record: every request sent
    rows = attempts(master, "httpstatuspush")
    assert rows and {r.outcome for r in rows} == {"sent"}


def test_outage_and_restart_lose_and_repeat_nothing(make_master, daemons, receiver):
    master = make_master(push_cfg(receiver.url))
    d = daemons(master.basedir, holder="d1")
    wait_for_event(receiver, "start")
    # the start packets answered (a receiver killed between storing a request and
    # answering it gets it again: see the SIGKILL test)
    wait_for(lambda: [r.outcome for r in attempts(master, "httpstatuspush")] == ["sent"],
             what="the start packets answered")
    receiver.stop()
    clock = Clock()
    for i in range(30):
        build(master, "runtests" if i % 2 else "docs", (SUCCESS, FAILURE)[i % 3 == 0], clock)
    wait_for(lambda: any(r.outcome == "failed" for r in attempts(master, "httpstatuspush")),
             what="a failed push while the receiver is down")
    assert d.stop() == 0  # and a restart while it is still down
    d = daemons(master.basedir, holder="d2")
    build(master, "docs", SUCCESS, clock)
    receiver.start()
    packets = wait_for_event(receiver, "buildFinished", 31, timeout=60)
    got = ids_of(packets)
    assert got == sorted(got) and len(got) == len(set(got)), "out of order or repeated"
    expected = names(packets)
    assert expected.count("buildStarted") == 31 and expected.count("stepFinished") == 62
    # the daemon that stopped said so, and the new one started, in order
    assert expected.count("shutdown") == 1 and expected.count("start") == 2
    assert expected.index("shutdown") < len(expected) - 1 - expected[::-1].index("start")
    numbers = {(p["payload"]["build"]["builderName"], p["payload"]["build"]["number"])
               for p in packets if p["event"] == "buildFinished"}
    assert len(numbers) == 31
    assert d.stop() == 0


CRASHABLE = """
import sys
from bbweb.daemon import run_daemon
sys.exit(run_daemon({basedir!r}, holder={holder!r}, **{fast!r}))
"""


def test_sigkill_during_a_push(make_master, receiver, tmp_path, daemons):
    """The receiver stores a request but the daemon dies before the answer: after a
    restart nothing is missing, and what comes again carries the same ids."""
    master = make_master(push_cfg(receiver.url, bufferDelay=0.0))
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    script = tmp_path / "first.py"
    script.write_text(CRASHABLE.format(basedir=str(master.basedir), holder="first", fast=FAST))
    first = subprocess.Popen([sys.executable, str(script)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        wait_for_event(receiver, "start")
        wait_for(lambda: [r.outcome for r in attempts(master, "httpstatuspush")] == ["sent"],
                 what="the start packets answered")
        receiver.hold()
        clock = Clock()
        build(master, "runtests", FAILURE, clock)
        wait_for(lambda: any(r["packets"] and "requestSubmitted" in names(r["packets"])
                             for r in receiver.requests()), what="a push in flight")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
    held = receiver.packets()
    receiver.hold(False)
    build(master, "docs", SUCCESS, clock)
    d = daemons(master.basedir, holder="second", lease=0.5)
    packets = wait_for_event(receiver, "buildFinished", 2, timeout=60)
    by_id: dict[int, dict[str, Any]] = {}
    for p in packets:
        if p["id"] in by_id:  # a duplicate: the same packet, with the same id
            assert by_id[p["id"]]["event"] == p["event"]
            assert by_id[p["id"]]["payload"] == p["payload"]
        by_id[p["id"]] = p
    assert {p["id"] for p in held} <= set(by_id)
    assert len(packets) > len(by_id), "the request in flight was not sent again"
    ordered = sorted(by_id.values(), key=lambda p: p["id"])
    events = names(ordered)
    assert events.count("buildStarted") == 2 and events.count("stepFinished") == 4
    assert saved_cursor(master, "notifier.httpstatuspush") is not None
    assert d.stop() == 0


def test_refused_packets_are_recorded_and_the_push_goes_on(make_master, daemons, receiver):
    master = make_master(push_cfg(receiver.url))
    d = daemons(master.basedir, holder="d")
    wait_for_event(receiver, "start")
    receiver.answer(503)
    clock = Clock()
    build(master, "runtests", SUCCESS, clock)
    wait_for(lambda: len([r for r in attempts(master, "httpstatuspush")
                          if r.outcome == "failed"]) >= 2, what="retries while 503")
    # after a failure, one packet per request (as in 0.8)
    refused = [r for r in receiver.requests() if r["answer"] == 503]
    assert len(refused[0]["packets"]) > 1 and all(len(r["packets"]) == 1
                                                  for r in refused[1:])
    # refused for good: recorded, not retried for ever (once: the packets after it must
    # still arrive, however fast the daemon sends them one by one)
    receiver.answer(400, once=True)
    wait_for(lambda: any(r.outcome == "rejected" for r in attempts(master, "httpstatuspush")),
             what="a rejected push")
    wait_for_event(receiver, "buildFinished")
    rejected = [r for r in attempts(master, "httpstatuspush") if r.outcome == "rejected"]
    assert rejected[0].answer.startswith("POST http://127.0.0.1:")
    assert "400" in rejected[0].answer
    assert d.stop() == 0
