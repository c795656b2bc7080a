"""http.log under real gunicorn: rotated by size across worker processes without losing or
splitting a line; distrib_port serves the same site on a UNIX socket."""

from __future__ import annotations

import http.client
import logging
import os
import re
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from bbweb.web.accesslog import SharedRotatingFileHandler
from tests.e2e.conftest import LiveMaster, start_live_master, stop_live_master, wait_for

ROTATE = 3000
KEEP = 40

CFG = f"""
from bbweb.config import *
c = BuildmasterConfig = {{}}
c['db_url'] = DB_URL
c['status'] = [WebStatus(http_port=PORT, distrib_port='unix:web.sock',
                         rotateLength={ROTATE}, maxRotatedFiles={KEEP})]
"""

# gunicorn's default format, Apache "combined"
LINE = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "GET /health\?i=(?P<i>\d+) HTTP/1\.1" 200 \d+ '
                  r'"[^"]*" "[^"]*"$')


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveMaster]:
    tmp = tmp_path_factory.mktemp("accesslog")
    master = start_live_master(tmp / "m", CFG, "sqlite:///" + str(tmp / "state.sqlite"),
                               daemon=False)
    try:
        yield master
    finally:
        stop_live_master(master)


def log_files(basedir: Path) -> list[Path]:
    """http.log and its rotations, newest first."""
    rotated = sorted((p for p in basedir.glob("http.log.*") if p.suffix[1:].isdigit()),
                     key=lambda p: int(p.suffix[1:]))
    current = basedir / "http.log"
    return ([current] if current.exists() else []) + rotated


def health_lines(basedir: Path) -> list[str]:
    lines = []
    for path in log_files(basedir):
        lines.extend(ln for ln in path.read_bytes().decode().split("\n")
                     if "/health?i=" in ln)
    return lines


def hammer(url: str, ids: range) -> None:
    """GET /health?i=N for every N, 16 connections at a time."""
    local = threading.local()

    def get(i: int) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session.get(f"{url}/health", params={"i": i}, timeout=30).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(get, ids)) == {200}


def test_http_log_rotates_without_losing_or_splitting_lines(live):
    first = range(500)
    hammer(live.url, first)
    lines = wait_for(lambda: (ls := health_lines(live.basedir)) and len(ls) >= len(first)
                     and ls, 30, what="every request's access-log line")
    assert len(lines) == len(first)
    bad = [ln for ln in lines if not LINE.match(ln)]
    assert not bad, bad[:5]
    assert Counter(int(LINE.match(ln)["i"]) for ln in lines) == Counter(first)
    files = log_files(live.basedir)
    assert len(files) >= 10, "expected several rotations"  # ~500 * 130 bytes / 3000
    assert len(files) <= KEEP + 1
    for path in files[1:]:  # a rotated file is full but never over the limit
        size = path.stat().st_size
        assert ROTATE // 2 < size <= ROTATE, (path, size)
    assert all(p.read_bytes().endswith(b"\n") for p in files if p.stat().st_size)

    # keep going well past the cap: the oldest files fall off, nothing else changes
    second = range(500, 2000)
    hammer(live.url, second)

    def recent_logged() -> bool:
        # gunicorn writes the line after the response, so the last ones may lag a little
        logged = {int(m["i"]) for ln in health_lines(live.basedir) if (m := LINE.match(ln))}
        return set(range(1900, 2000)) <= logged

    wait_for(recent_logged, 30, what="the last requests' access-log lines")
    files = log_files(live.basedir)
    assert len(files) == KEEP + 1
    assert not (live.basedir / f"http.log.{KEEP + 1}").exists()
    lines = health_lines(live.basedir)
    bad = [ln for ln in lines if not LINE.match(ln)]
    assert not bad, bad[:5]
    seen = Counter(int(LINE.match(ln)["i"]) for ln in lines)
    assert max(seen.values()) == 1, "a line was written twice"
    assert 0 not in seen, "the oldest lines should have been rotated away"


def test_many_processes_rotating_at_once(tmp_path):
    """The handler alone, under more contention than gunicorn gives it: 8 forked
    processes × 4 threads each write 100 lines into files of ~20 lines."""
    path = tmp_path / "http.log"
    handler = SharedRotatingFileHandler(str(path), max_bytes=1000, backup_count=1000)
    log = logging.getLogger("bbweb.test.accesslog")
    log.propagate = False
    log.addHandler(handler)
    pids = []
    for proc in range(8):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            try:
                def write(p: int, t: int) -> None:
                    for n in range(100):
                        log.warning("proc=%d thread=%d n=%03d %s", p, t, n, "x" * 20)

                threads = [threading.Thread(target=write, args=(proc, t)) for t in range(4)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    log.removeHandler(handler)
    handler.close()
    lines = []
    files = log_files(tmp_path)
    for p in files:
        assert p.stat().st_size <= 1000
        lines.extend(p.read_text().splitlines())
    assert len(lines) == 8 * 4 * 100
    assert len(set(lines)) == len(lines)
    assert all(re.fullmatch(r"proc=\d thread=\d n=\d{3} x{20}", ln) for ln in lines)
    assert len(files) > 100


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.unix_path)


def test_distrib_port_serves_the_site_on_a_unix_socket(live):
    sock = live.basedir / "web.sock"
    assert sock.is_socket()
    conn = UnixHTTPConnection(str(sock))
    try:
        conn.request("GET", "/json/project")
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 200, body
    assert resp.getheader("Content-Type", "").startswith("application/json")
    assert requests.get(live.url + "/json/project", timeout=10).content == body


def test_access_line_written_directly_is_the_line_logging_writes(tmp_path):
    """The logger writes the access line straight to http.log; the line is the one
    Python's logging would have written, and an operator's own handler still gets it."""
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn.config import Config

    from bbweb.web.accesslog import AccessLogger

    cfg = Config()
    cfg.set("accesslog", str(tmp_path / "http.log"))
    log = AccessLogger(cfg)
    resp = SimpleNamespace(status="200 OK", sent=5120, headers=())
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": '/json?q="x"', "PATH_INFO": "/json",
               "QUERY_STRING": 'q="x"', "SERVER_PROTOCOL": "HTTP/1.1",
               "REMOTE_ADDR": "10.0.0.7", "HTTP_USER_AGENT": "curl/8.0",
               "HTTP_AUTHORIZATION": "Basic d29ya2VyMTpwdw=="}
    took = timedelta(microseconds=1500)
    assert log._direct is not None
    log.access(resp, SimpleNamespace(headers=[]), environ, took)  # directly
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    extra = Collect()
    log.access_log.addHandler(extra)  # an operator's handler: through logging
    try:
        log.access(resp, SimpleNamespace(headers=[]), environ, took)
    finally:
        log.access_log.removeHandler(extra)
    direct, through_logging = (tmp_path / "http.log").read_text().splitlines()
    assert seen == [through_logging]
    without_time = [re.sub(r"\[[^\]]+\]", "[]", line) for line in (direct, through_logging)]
    assert without_time[0] == without_time[1]
    assert without_time[0] == '10.0.0.7 - worker1 [] "GET /json?q=\\"x\\" HTTP/1.1" 200 5120 ' \
                              '"-" "curl/8.0"'
