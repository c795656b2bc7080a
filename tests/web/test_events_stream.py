"""``/json/events``: the live status stream over HTTP (the Flask test client, streaming),
against events and logs the engine wrote, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.builders import sync_builders
from bbweb.engine.changes import ChangeInput, add_change
from bbweb.engine.force import force_build
from bbweb.engine.slaves import ensure_slave
from bbweb.status import eventstream
from bbweb.web import events as web_events
from tests.auth.conftest import USERS, login

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('s1', 'pw')]
f = BuildFactory([ShellCommand(command=['make'], name='compile'),
                  ShellCommand(command=['make', 'test'], name='test')])
c['builders'] = [BuilderConfig(name='b', slavenames=['s1'], factory=f),
                 BuilderConfig(name='other', slavenames=['s1'], factory=f)]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['b', 'other'])]
"""


class Stream:
    """An open SSE response read frame by frame."""

    def __init__(self, resp: Any) -> None:
        self.resp = resp
        self.chunks: Iterator[bytes] = iter(resp.response)
        self.buffer = ""
        self.comments: list[str] = []
        self.retry: int | None = None

    def next_event(self) -> dict[str, Any]:
        while True:
            while "\n\n" not in self.buffer:
                self.buffer += next(self.chunks).decode()
            block, self.buffer = self.buffer.split("\n\n", 1)
            event: dict[str, Any] = {}
            for line in block.split("\n"):
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(": ")
                if name == "retry":
                    self.retry = int(value)
                elif name == "data":
                    event["data"] = json.loads(value)
                elif name:
                    event[name] = value
            if "event" in event:
                return event

    def until(self, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        while not done(got):
            got.append(self.next_event())
        return got

    def close(self) -> None:
        self.resp.close()


@pytest.fixture
def smaster(make_master):
    m = make_master(CFG)
    with m.db.write() as conn:
        sync_builders(conn, m.config)
    return m


@pytest.fixture
def sclient(smaster):
    app = smaster.app()
    yield app.test_client()
    app.extensions["bbweb"].db.dispose()


# as under gunicorn's gthread workers (a server serving one request at a time gets none)
THREADED = {"wsgi.multithread": True}


def open_stream(client, url: str, **headers: str) -> Stream:
    resp = client.get(url, headers=headers, buffered=False, environ_overrides=THREADED)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return Stream(resp)


def run_build(master, builder: str = "b", rcs: dict[str, int] | None = None,
              log: list | None = None, t: float = 1000.0) -> int:
    cfg = master.config
    with master.db.write() as conn:
        force_build(conn, cfg, [builder], scheduler="force")
    with master.db.write() as conn:
        sid = es.slave_id(conn, "s1") or es.ensure_slave(conn, "s1")
        claimed = eb.claim_build_request(conn, cfg, "s1", sid, now=t)
    assert claimed is not None
    while True:
        with master.db.write() as conn:
            spec = eb.next_step(conn, cfg, claimed.buildid, now=t)
        if spec is None:
            return claimed.number
        with master.db.write() as conn:
            eb.append_step_log(conn, cfg, spec["id"], "stdio",
                               log or [("h", "$ make\n"), ("o", "ok\n")])
            eb.finish_step(conn, cfg, spec["id"], (rcs or {}).get(spec["name"], 0), now=t + 1)
        t += 2


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


def finished(events: list[dict[str, Any]]) -> bool:
    return any(e["event"] == "build.finished" for e in events)


def test_each_event_has_its_id_kind_and_json_data(sclient, smaster):
    s = open_stream(sclient, "/json/events")
    number = run_build(smaster, rcs={"test": 2})
    got = s.until(finished)
    s.close()
    assert s.retry == eventstream.RETRY_MS
    ids = [int(e["id"]) for e in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert kinds(got) == ["buildrequest.new", "buildset.new", "build.started", "step.started",
                          "step.finished", "step.started", "step.finished", "build.finished"]
    for e in got:
        assert e["data"]["id"] == int(e["id"]) and e["data"]["kind"] == e["event"]
        assert isinstance(e["data"]["time"], float)
    step_done = [e["data"] for e in got if e["event"] == "step.finished"]
    assert [(d["builder"], d["build"], d["name"], d["results"]) for d in step_done] == [
        ("b", number, "compile", 0), ("b", number, "test", 2)]
    assert got[-1]["data"]["results"] == 2 and got[-1]["data"]["builder"] == "b"


@pytest.mark.parametrize("how", ["header", "after"])
def test_resume_exactly_after_the_last_id(sclient, smaster, how):
    s = open_stream(sclient, "/json/events?after=0")
    run_build(smaster)
    first = s.until(finished)
    s.close()
    cut = first[3]  # the client saw up to the first step.started
    if how == "header":
        s2 = open_stream(sclient, "/json/events?after=1", **{"Last-Event-ID": cut["id"]})
    else:
        s2 = open_stream(sclient, f"/json/events?after={cut['id']}")
    rest = s2.until(finished)
    s2.close()
    assert [e["id"] for e in rest] == [e["id"] for e in first[4:]]
    assert [e["data"] for e in rest] == [e["data"] for e in first[4:]]


def test_without_kind_every_event_comes_with_kind_only_those(sclient, smaster):
    from bbweb.engine.actions import cancel_clean_shutdown, request_clean_shutdown

    every = open_stream(sclient, "/json/events")
    builds = open_stream(sclient, "/json/events?kind=builds")
    with smaster.db.write() as conn:
        request_clean_shutdown(conn, "admin")
        cancel_clean_shutdown(conn, "admin")
    run_build(smaster)
    got = every.until(finished)
    assert kinds(got)[:2] == ["master.clean_shutdown", "master.clean_shutdown_cancelled"]
    assert got[0]["data"]["user"] == "admin"
    assert not [k for k in kinds(builds.until(finished)) if k.startswith("master.")]
    every.close()
    builds.close()


def test_no_position_starts_with_the_next_event(sclient, smaster):
    run_build(smaster)
    s = open_stream(sclient, "/json/events")
    with smaster.db.write() as conn:
        es.slave_connected(conn, "s1", {})
    run_build(smaster, "other")
    got = s.until(finished)
    s.close()
    assert got[0]["event"] == "slave.connected" and got[0]["data"]["slave"] == "s1"
    assert {e["data"]["builder"] for e in got if "builder" in e["data"]} == {"other"}


def test_builder_and_kind_filters(sclient, smaster):
    s = open_stream(sclient, "/json/events?after=0&builder=other&kind=steps,builds")
    steps_only = open_stream(sclient, "/json/events?after=0&kind=steps&builder=b")
    changes = open_stream(sclient, "/json/events?after=0&kind=changes")
    run_build(smaster, "b")
    with smaster.db.write() as conn:
        add_change(conn, smaster.config, ChangeInput(author="me", comments="fix <it>",
                                                     branch="main"))
    run_build(smaster, "other")
    got = s.until(finished)
    assert {e["data"]["builder"] for e in got if "builder" in e["data"]} == {"other"}
    assert "step.finished" in kinds(got) and "build.started" in kinds(got)
    assert all(e["event"].startswith(("build", "step.")) for e in got)
    only = steps_only.until(lambda g: len(g) == 4)
    assert kinds(only) == ["step.started", "step.finished"] * 2
    assert {e["data"]["builder"] for e in only} == {"b"}
    change = changes.next_event()
    assert change["event"] == "change.new" and change["data"]["branch"] == "main"
    for stream in (s, steps_only, changes):
        stream.close()


def test_clients_behind_what_the_process_holds_read_the_outbox(sclient, smaster,
                                                               monkeypatch):
    """A process keeps only the newest events for its streams; a client resuming from
    further back gets every event all the same, paged, and then the live ones."""
    monkeypatch.setattr(eventstream, "RECENT_EVENTS", 3)
    monkeypatch.setattr(eventstream, "PAGE", 2)
    live = open_stream(sclient, "/json/events")
    for _ in range(3):
        run_build(smaster)
    got = live.until(lambda g: sum(e["event"] == "build.finished" for e in g) == 3)
    live.close()
    first = int(got[0]["id"]) - 1
    replay = open_stream(sclient, f"/json/events?after={first}")
    again = replay.until(lambda g: len(g) == len(got))
    replay.close()
    assert [(e["id"], e["data"]) for e in again] == [(e["id"], e["data"]) for e in got]
    steps = open_stream(sclient, f"/json/events?after={first}&kind=steps")
    only = steps.until(lambda g: len(g) == 12)
    steps.close()
    assert [e["id"] for e in only] == [e["id"] for e in got if e["event"].startswith("step.")]


@pytest.mark.parametrize(("url", "message"), [
    ("/json/events?kind=bogus", "unknown kind 'bogus'"),
    ("/json/events?after=x", "'x' is not a stream position"),
    ("/json/events?after=-3", "is not a stream position"),
    ("/json/events?kind=logs", "kind=logs follows the logs of one build"),
    ("/json/events?build=0", "build=N needs exactly one builder=NAME"),
    ("/json/events?build=zero&builder=b", "build must be a build number, not 'zero'"),
    ("/json/events?builder=nope", "no such builder 'nope'"),
    ("/json/events?builder=b&build=7", "builder 'b' has no build number 7"),
    ("/json/events?builder=", "builder must not be empty"),
])
def test_bad_arguments_are_400_with_a_message(sclient, url, message):
    resp = sclient.get(url)
    assert resp.status_code == 400
    assert message in resp.get_data(as_text=True)
    resp = sclient.get("/json/events", headers={"Last-Event-ID": "12/x"})
    assert resp.status_code == 400


def test_heartbeats_keep_an_idle_stream_open(sclient, smaster, monkeypatch):
    monkeypatch.setattr(eventstream, "HEARTBEAT_SECONDS", 0.2)
    s = open_stream(sclient, "/json/events")
    run_build(smaster)  # an event after some quiet
    while s.comments.count("keepalive") < 2:
        s.buffer += next(s.chunks).decode()
        while "\n\n" in s.buffer:
            block, s.buffer = s.buffer.split("\n\n", 1)
            s.comments += [line[1:].strip() for line in block.split("\n")
                           if line.startswith(":")]
    s.close()


def test_log_stream_of_one_build(sclient, smaster):
    lines = [("h", "$ make\n")] + [("o", f"line {i} <b>&amp;\n") for i in range(5)]
    number = run_build(smaster, log=lines)
    url = f"/json/events?kind=logs&builder=b&build={number}"
    s = open_stream(sclient, url)
    got = s.until(lambda g: bool(g) and g[-1]["event"] == "end")
    s.close()
    assert kinds(got) == ["log.started", "log.chunk", "log.chunk", "log.finished"] * 2 + ["end"]
    chunks = [(e["data"]["stream"], e["data"]["seq"], e["data"]["text"]) for e in got[1:3]]
    assert chunks == [("header", 0, "$ make\n"),
                      ("stdout", 1, "".join(t for _s, t in lines[1:]))]
    assert {e["data"]["step"] for e in got if e["event"] == "log.chunk"} == {"compile", "test"}
    # every id is a position; resuming at the end answers 204 (no reconnecting)
    resp = sclient.get(url, headers={"Last-Event-ID": got[-1]["id"]})
    assert resp.status_code == 204
    # resuming after the first log's end sends exactly the second log
    again = open_stream(sclient, url, **{"Last-Event-ID": got[3]["id"]})
    rest = again.until(lambda g: bool(g) and g[-1]["event"] == "end")
    again.close()
    assert [e["data"] for e in rest] == [e["data"] for e in got[4:]]
    assert [e["id"] for e in rest] == [e["id"] for e in got[4:]]


def test_log_stream_follows_a_running_build(sclient, smaster):
    cfg = smaster.config
    with smaster.db.write() as conn:
        force_build(conn, cfg, ["b"], scheduler="force")
        sid = ensure_slave(conn, "s1")
    with smaster.db.write() as conn:
        claimed = eb.claim_build_request(conn, cfg, "s1", sid, now=10.0)
    with smaster.db.write() as conn:
        spec = eb.next_step(conn, cfg, claimed.buildid, now=11.0)
    url = f"/json/events?builder=b&build={claimed.number}"
    s = open_stream(sclient, url)
    assert kinds(s.until(lambda g: len(g) == 1)) == ["log.started"]
    for i in range(3):
        with smaster.db.write() as conn:
            eb.append_step_log(conn, cfg, spec["id"], "stdio", [("o", f"part {i}\n")])
        chunk = s.next_event()
        assert chunk["event"] == "log.chunk" and chunk["data"]["text"] == f"part {i}\n"
        assert chunk["data"]["seq"] == i
    position = chunk["id"]
    with smaster.db.write() as conn:
        eb.finish_step(conn, cfg, spec["id"], 0, now=12.0)
    got = s.until(lambda g: "step.finished" in kinds(g) and "log.finished" in kinds(g))
    s.close()
    # a client that lost the connection after the third chunk resumes from there
    with smaster.db.write() as conn:
        spec = eb.next_step(conn, cfg, claimed.buildid, now=13.0)
        eb.append_step_log(conn, cfg, spec["id"], "stdio", [("e", "warn\n")])
        eb.finish_step(conn, cfg, spec["id"], 0, now=14.0)
    with smaster.db.write() as conn:
        assert eb.next_step(conn, cfg, claimed.buildid, now=15.0) is None
    again = open_stream(sclient, url, **{"Last-Event-ID": position})
    rest = again.until(lambda g: bool(g) and g[-1]["event"] == "end")
    again.close()
    # nothing the client had is sent again, nothing it lacked is missing
    assert sorted(kinds(rest)) == sorted(kinds(got) + ["step.started", "log.started",
                                                       "log.chunk", "step.finished",
                                                       "log.finished", "build.finished",
                                                       "end"])
    warn = [e["data"] for e in rest if e["event"] == "log.chunk"]
    assert [(d["step"], d["stream"], d["text"]) for d in warn] == [("test", "stderr", "warn\n")]


def test_a_finished_build_replays_from_far_back(sclient, smaster, monkeypatch):
    """A build's events found pages after the position asked for are still sent (only
    then does the stream end), and a duplicate builder= is no error."""
    monkeypatch.setattr(eventstream, "PAGE", 2)
    number = run_build(smaster)
    run_build(smaster, "other")
    s = open_stream(sclient, f"/json/events?builder=b&builder=b&build={number}"
                             "&kind=builds,steps&after=0")
    got = s.until(lambda g: bool(g) and g[-1]["event"] == "end")
    s.close()
    assert kinds(got) == ["build.started"] + ["step.started", "step.finished"] * 2 + [
        "build.finished", "end"]


def test_stream_slots_are_bounded_with_503_and_retry_after(sclient, monkeypatch):
    monkeypatch.setenv(web_events.STREAM_SLOTS_VAR, "1")
    s = open_stream(sclient, "/json/events")
    s.next_event  # noqa: B018 (the stream is open: its slot is taken)
    full = sclient.get("/json/events", environ_overrides=THREADED)
    assert full.status_code == 503 and full.headers["Retry-After"] == "15"
    assert "every live stream slot" in full.get_data(as_text=True)
    s.close()
    assert web_events.slots.open == 0
    again = open_stream(sclient, "/json/events")
    again.close()
    # a server that serves one request at a time serves no stream
    single = sclient.get("/json/events")
    assert single.status_code == 503
    assert "serves no live streams" in single.get_data(as_text=True)


def test_the_stream_is_protected_like_the_pages(make_master):
    from tests.auth.conftest import authz_cfg

    m = make_master(authz_cfg(f"Authz(auth={USERS}, view='auth')"))
    app = m.app()
    c = app.test_client()
    resp = c.get("/json/events", headers={"Accept": "text/event-stream"})
    assert resp.status_code == 401
    assert c.get("/json/events").status_code == 401  # curl's Accept: */* too
    basic = "Basic " + base64.b64encode(b"alice:wonder-land").decode()
    s = open_stream(c, "/json/events", Authorization=basic)  # what bbweb statuslog -u sends
    s.close()
    login(c, "bob", "builder-pw")
    s = open_stream(c, "/json/events")
    s.close()
    app.extensions["bbweb"].db.dispose()
