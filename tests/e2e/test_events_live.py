"""The live status stream on real processes: gunicorn (bbweb's settings), the daemon and a
worker. Resuming across a daemon restart, 200 idle stream clients while pages are still
served, and ``bbweb statuslog`` following a master (and reconnecting when the web server
restarts)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bbweb.launcher import STREAM_SLOTS, gunicorn_command
from bbweb.mastercfg.webstatus import ListenAddress
from bbweb.statuslog import SseEvent, parse_sse
from bbweb.web.events import STREAM_SLOTS_VAR
from tests.e2e.conftest import LiveMaster, free_port, start_live_master, stop_live_master, wait_for

CFG = r"""
from bbweb.config import *
c = BuildmasterConfig = {}
c['buildbotURL'] = 'http://127.0.0.1:PORT/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('w1', 'pw1')]
f = BuildFactory([ShellCommand(name='greet', command=['sh', '-c', 'echo hello; echo oops >&2']),
                  ShellCommand(name='check', command=['sh', '-c', 'exit 1'])])
c['builders'] = [BuilderConfig(name='live', slavenames=['w1'], factory=f)]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['live'])]
c['status'] = [WebStatus(http_port=PORT, change_hook_dialects={'base': True})]
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveMaster]:
    base = tmp_path_factory.mktemp("events-live")
    master = start_live_master(base / "master", CFG.replace(
        "c['schedulers'] = [", "c['schedulers'] = [AnyBranchScheduler(name='all', "
        "builderNames=['live']), "), "sqlite:///" + str(base / "state.sqlite"))
    master.start_worker("w1", "pw1")
    try:
        wait_for(lambda: (master.get_json("/json/slaves/w1") or {}).get("connected"), 60,
                 what="the worker to connect")
        yield master
    finally:
        stop_live_master(master)


def change(live: LiveMaster, comment: str) -> None:
    resp = requests.post(live.url + "/change_hook/base", timeout=10,
                         data={"author": "me", "comments": comment, "branch": "main"})
    assert resp.status_code == 202, resp.text


class Client:
    """A stream read with requests, as a script would."""

    def __init__(self, url: str, last_id: str | None = None) -> None:
        headers = {"Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        self.resp = requests.get(url, headers=headers, stream=True, timeout=(10, 60))
        assert self.resp.status_code == 200, self.resp.text
        self.events = parse_sse(self.resp.iter_lines(decode_unicode=True))

    def until(self, kind: str) -> list[SseEvent]:
        got = []
        for event in self.events:
            got.append(event)
            if event.kind == kind:
                return got
        raise AssertionError(f"the stream ended before {kind}")

    def close(self) -> None:
        self.resp.close()


def finished_builds(live: LiveMaster) -> int:
    return len([n for n, b in (live.get_json("/json/builders/live/builds/_all") or {}).items()
                if b.get("results") is not None])


def test_resume_with_last_event_id_across_a_daemon_restart(live: LiveMaster) -> None:
    stream = Client(live.url + "/json/events")
    change(live, "first")
    first = stream.until("build.finished")
    stream.close()
    last = first[-1].id
    assert last is not None
    # the client is away; the daemon restarts; another build runs
    live.stop("daemon")
    live.spawn("daemon", [sys.executable, "-m", "bbweb.cli", "master", str(live.basedir)])
    done = finished_builds(live)
    change(live, "second")
    wait_for(lambda: finished_builds(live) > done, 90, what="the second build")
    again = Client(live.url + "/json/events", last_id=last)
    rest = again.until("build.finished")
    again.close()
    ids = [int(e.id or 0) for e in rest]
    assert ids[0] > int(last) and ids == sorted(ids) and len(set(ids)) == len(ids)
    # exactly what a full replay holds after that id, in order
    replay = Client(live.url + f"/json/events?after={last}")
    expected = replay.until("build.finished")
    replay.close()
    assert [(e.id, e.kind, e.data) for e in rest] == [(e.id, e.kind, e.data) for e in expected]
    assert [e.kind for e in rest if e.kind.startswith("step.")] == [
        "step.started", "step.finished"] * 2
    assert rest[-1].data["results"] == 2 and rest[-1].data["builder"] == "live"


def _open_raw_stream(port: int) -> tuple[socket.socket, str]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /json/events?kind=builds HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Accept: text/event-stream\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        if not data:
            break
        head += data
    return sock, head.decode("latin-1")


def test_200_idle_stream_clients_do_not_stop_pages(live: LiveMaster) -> None:
    port = int(live.url.rsplit(":", 1)[1])
    socks: list[socket.socket] = []
    heads: list[str] = []
    try:
        for _ in range(200):
            sock, head = _open_raw_stream(port)
            socks.append(sock)
            heads.append(head)
        statuses = [h.split(" ", 2)[1] for h in heads]
        # two processes of 200 stream slots each: however unevenly the connections are
        # dealt out, every client has its stream
        assert statuses == ["200"] * 200, statuses
        for page in ("/", "/waterfall", "/builders/live", "/builders", "/json/builders",
                     "/one_line_per_build"):
            started = time.monotonic()
            resp = requests.get(live.url + page, timeout=10)
            assert resp.status_code == 200, page
            assert time.monotonic() - started < 5, page
        # and the open streams are live: a build reaches them
        change(live, "while 200 listen")
        open_ones = [s for s, h in zip(socks, heads, strict=True) if " 200 " in h.split("\r\n")[0]]
        for sock in (open_ones[0], open_ones[-1]):
            got = b""
            deadline = time.monotonic() + 60
            while b"event: build.started" not in got and time.monotonic() < deadline:
                got += sock.recv(65536)
            assert b"event: build.started" in got
    finally:
        for sock in socks:
            sock.close()
    # the slots come back when the clients go
    def all_free() -> bool:
        sock, head = _open_raw_stream(port)
        sock.close()
        return " 200 " in head.split("\r\n")[0]

    wait_for(lambda: all(all_free() for _ in range(4)), 30, what="stream slots to be freed")
    wait_for(lambda: finished_builds(live) >= 3, 90, what="the build to finish")


def test_a_client_who_leaves_frees_its_stream_slot_at_once(live: LiveMaster) -> None:
    """One web process with one stream slot: while a client holds it the next gets 503;
    when the first closes its connection (a browser tab closed, a page reloaded) the slot
    is free again at once, not after the next heartbeat or two (15 s each) found the
    socket dead."""
    port = free_port()
    command = gunicorn_command(live.basedir, ListenAddress("127.0.0.1", port), 1)
    slots = f"{STREAM_SLOTS_VAR}={STREAM_SLOTS}"
    assert slots in command
    live.spawn("web-one-slot", [f"{STREAM_SLOTS_VAR}=1" if a == slots else a for a in command])
    try:
        wait_for(lambda: _health(port), 60, what="the one-slot web server")
        first, head = _open_raw_stream(port)
        assert " 200 " in head.split("\r\n")[0], head
        second, head = _open_raw_stream(port)
        second.close()
        assert " 503 " in head.split("\r\n")[0], head
        first.close()
        freed_at: list[float] = []
        closed = time.monotonic()

        def slot_free() -> bool:
            sock, head = _open_raw_stream(port)
            sock.close()
            if " 200 " in head.split("\r\n")[0]:
                freed_at.append(time.monotonic())
                return True
            return False

        wait_for(slot_free, 40, what="the stream slot to be freed")
        # well inside the first heartbeat (15 s): the hang-up itself freed it
        assert freed_at[0] - closed < 10, freed_at[0] - closed
    finally:
        live.stop("web-one-slot")


def _health(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    except (requests.ConnectionError, requests.Timeout):
        return False


def _statuslog(live: LiveMaster, out: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bbweb.cli", "statuslog", "--master",
                             live.url, *args], stdout=out.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def test_statuslog_prints_what_buildbot_statuslog_printed(live: LiveMaster,
                                                          tmp_path: Path) -> None:
    steps_out, logs_out = tmp_path / "steps.txt", tmp_path / "logs.txt"
    procs = [_statuslog(live, steps_out), _statuslog(live, logs_out, "--level", "logs")]
    try:
        for out in (steps_out, logs_out):
            wait_for(lambda out=out: "builderAdded live" in _lines(out), 30,
                     what="statuslog to connect")
        done = finished_builds(live)
        change(live, "watched")
        wait_for(lambda: "buildFinished 2" in _lines(steps_out), 90, what="buildFinished")
        wait_for(lambda: "builderChangedState live idle None" in _lines(steps_out), 30,
                 what=f"the builder to be idle: {_lines(steps_out)}")
        lines = _lines(steps_out)
        assert lines[:2] == ["connected", "builderAdded live"]
        assert lines[2:] == [
            "builderChangedState live building None", "buildStarted live",
            "stepStarted live greet", "stepFinished live greet (0, [])",
            "stepStarted live check", "stepFinished live check (2, ['check'])",
            "buildFinished 2", "builderChangedState live idle None"], lines
        wait_for(lambda: "logFinished live check" in _lines(logs_out), 60, what="the logs")
        logs = _lines(logs_out)
        assert "logStarted live greet" in logs and "logChunk[STDOUT]: hello" in logs
        assert "logChunk[STDERR]: oops" in logs
        assert any(line.startswith("logChunk[HEADER]: ") for line in logs)

        # the web server restarts: statuslog says so, reconnects, and misses nothing
        live.stop("web")
        wait_for(lambda: "lost connection" in _lines(steps_out), 30, what="lost connection")
        port = int(live.url.rsplit(":", 1)[1])
        live.spawn("web", gunicorn_command(live.basedir, ListenAddress("127.0.0.1", port), 2))
        wait_for(lambda: _lines(steps_out).count("connected") == 2, 60, what="reconnection")
        change(live, "after the restart")
        wait_for(lambda: finished_builds(live) > done + 1, 90, what="the next build")
        wait_for(lambda: _lines(steps_out).count("buildFinished 2") == 2, 30,
                 what="the next build's lines")
        after = _lines(steps_out)
        assert after.count("buildStarted live") == 2
        assert after.count("stepStarted live greet") == 2
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def test_statuslog_reports_a_refused_stream(live: LiveMaster, tmp_path: Path) -> None:
    out = tmp_path / "bad.txt"
    proc = subprocess.run([sys.executable, "-m", "bbweb.cli", "statuslog", "--master",
                           live.url + "/nowhere"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "answered 404" in proc.stderr
    assert not out.exists()
