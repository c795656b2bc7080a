"""Running gunicorn yourself, as docs/deployment.md says: the repository's gunicorn.conf.py
makes a bare ``gunicorn wsgi:app`` serve like ``bbweb start``, and ``--chdir BASEDIR`` is
enough to find the master (no ``BBWEB_BASEDIR``). Real gunicorn processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bbweb.db.migrate import upgrade
from bbweb.launcher import DEFAULT_WEB_WORKERS, control_socket_settings, gunicorn_command
from bbweb.mastercfg.master import load_master_config
from bbweb.mastercfg.webstatus import ListenAddress
from tests.e2e.conftest import free_port
from tests.support.polling import wait_for

REPO = Path(__file__).resolve().parents[2]

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Served by hand'
c['slaves'] = [BuildSlave('w1', 'pw1')]
c['builders'] = [BuilderConfig(name='b', slavenames=['w1'],
                               factory=BuildFactory([ShellCommand(command=['true'])]))]
c['status'] = [WebStatus(http_port='tcp:PORT:interface=127.0.0.1',
                         distrib_port='unix:web.sock', logRotateLength=777)]
"""


def make_basedir(path: Path, port: int) -> Path:
    path.mkdir(parents=True)
    (path / "master.cfg").write_text(textwrap.dedent(CFG).replace("PORT", str(port)))
    upgrade(load_master_config(path).db_url)  # SQLite in the basedir
    return path


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without BBWEB_BASEDIR (or GUNICORN_CMD_ARGS)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("BBWEB_BASEDIR", "GUNICORN_CMD_ARGS")}
    return dict(env, PYTHONUNBUFFERED="1", **extra)


class Gunicorn:
    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log.open("wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def answers(self, url: str) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"gunicorn exited ({self.proc.returncode}):\n{self.output()}")
        try:
            return requests.get(url, timeout=5).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def run_gunicorn(tmp_path: Path) -> Iterator:
    started: list[Gunicorn] = []

    def start(cmd: list[str], cwd: Path, env: dict[str, str]) -> Gunicorn:
        g = Gunicorn(cmd, cwd, env, tmp_path / f"gunicorn-{len(started)}.log")
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()


def unix_get(socket_path: Path, path: str) -> bytes:
    """The raw HTTP/1.0 answer to a GET over a UNIX socket (requests speaks only TCP)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(socket_path))
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def assert_served_like_bbweb_start(g: Gunicorn, basedir: Path, port: int) -> None:
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: g.answers(url + "/health"), 60, what="gunicorn to answer /health")
    assert "Served by hand" in requests.get(url + "/", timeout=10).text
    out = g.output()
    assert "Using worker: gthread" in out  # bbweb start's worker class
    # and its number of processes
    assert out.count("Booting worker with pid") >= DEFAULT_WEB_WORKERS
    # distrib_port is the second bind, relative to the basedir
    answer = unix_get(basedir / "web.sock", "/")
    assert answer.startswith(b"HTTP/1.0 200") and b"Served by hand" in answer
    # the access log: BASEDIR/http.log through bbweb's logger
    wait_for(lambda: "GET /health" in (basedir / "http.log").read_text()
             if (basedir / "http.log").exists() else False, 10, what="a line in http.log")


def test_bare_gunicorn_wsgi_app_serves_like_bbweb_start(tmp_path, run_gunicorn):
    """``gunicorn wsgi:app`` at the top of the checkout, the master named by
    BBWEB_BASEDIR: bind, worker class, processes, distrib_port and http.log all come from
    gunicorn.conf.py and the master's WebStatus, as ``bbweb start`` sets them."""
    port = free_port()
    basedir = make_basedir(tmp_path / "master", port)
    g = run_gunicorn([sys.executable, "-m", "gunicorn", "wsgi:app"], REPO,
                     environment(BBWEB_BASEDIR=str(basedir)))
    assert_served_like_bbweb_start(g, basedir, port)


def test_chdir_basedir_is_enough_from_the_checkout(tmp_path, run_gunicorn):
    """``gunicorn --chdir BASEDIR 'bbweb.app:serving_app()'`` started at the top of the
    checkout, no BBWEB_BASEDIR: the app serves the master in BASEDIR and gunicorn.conf.py
    (read before gunicorn applies --chdir) takes its settings from that same master."""
    port = free_port()
    basedir = make_basedir(tmp_path / "elsewhere" / "ci", port)
    g = run_gunicorn([sys.executable, "-m", "gunicorn", "--chdir", str(basedir),
                      "bbweb.app:serving_app()"], REPO, environment())
    assert_served_like_bbweb_start(g, basedir, port)


def test_documented_full_command_without_bbweb_basedir(tmp_path, run_gunicorn):
    """The command docs/deployment.md prints (what ``bbweb start`` runs), started from a
    directory with no gunicorn.conf.py and no BBWEB_BASEDIR in the environment."""
    port = free_port()
    basedir = make_basedir(tmp_path / "master", port)
    neutral = tmp_path / "neutral"
    neutral.mkdir()
    cmd = gunicorn_command(basedir, ListenAddress("127.0.0.1", port), 2)
    g = run_gunicorn(cmd, neutral, environment())
    assert_served_like_bbweb_start(g, basedir, port)


def test_master_cfg_errors_stop_gunicorn_with_the_line_to_fix(tmp_path):
    basedir = tmp_path / "master"
    basedir.mkdir()
    (basedir / "master.cfg").write_text(
        "from bbweb.config import *\nc = BuildmasterConfig = {}\n"
        "c['status'] = [WebStatus(http_port='tcp:80:bogus=1')]\n")
    proc = subprocess.run([sys.executable, "-m", "gunicorn", "wsgi:app"], cwd=REPO,
                          env=environment(BBWEB_BASEDIR=str(basedir)), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert "bbweb: the configuration has errors:" in proc.stderr, proc.stderr
    assert f"{basedir / 'master.cfg'}:3" in proc.stderr


def test_two_masters_on_one_host_each_have_their_own_control_socket(tmp_path, run_gunicorn):
    """gunicorn 25.1+ opens a control socket at one fixed path per user by default; two
    masters on one host (one run from gunicorn.conf.py, one with bbweb start's command)
    would take it from each other. Each has its own in BASEDIR/run/, both serve, and
    stopping one leaves the other's socket alone."""
    if not control_socket_settings(tmp_path):
        pytest.skip("the installed gunicorn has no control socket (before 25.1)")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in environment(HOME=str(home)).items() if k != "XDG_RUNTIME_DIR"}
    ports = [free_port(), free_port()]
    basedirs = [make_basedir(tmp_path / f"m{i}", port) for i, port in enumerate(ports)]
    by_conf = run_gunicorn([sys.executable, "-m", "gunicorn", "wsgi:app"], REPO,
                           dict(env, BBWEB_BASEDIR=str(basedirs[0])))
    by_start = run_gunicorn(gunicorn_command(basedirs[1], ListenAddress("127.0.0.1", ports[1]),
                                             2), tmp_path, env)
    servers = [by_conf, by_start]
    for g, basedir, port in zip(servers, basedirs, ports, strict=True):
        wait_for(lambda g=g, port=port: g.answers(f"http://127.0.0.1:{port}/health"), 60,
                 what="gunicorn to answer /health")
        ctl = basedir / "run" / "gunicorn.ctl"
        wait_for(lambda ctl=ctl: ctl.is_socket(), 30, what=f"a control socket at {ctl}")
        assert f"127.0.0.1:{port}" in gunicornc(ctl, "show listeners")  # its own master
    assert not (home / ".gunicorn").exists()
    by_conf.stop()
    assert f"127.0.0.1:{ports[1]}" in gunicornc(basedirs[1] / "run" / "gunicorn.ctl",
                                                 "show listeners")
    assert by_start.answers(f"http://127.0.0.1:{ports[1]}/health")


def gunicornc(ctl: Path, command: str) -> str:
    """gunicorn's own control client, asking the master behind ``ctl``."""
    proc = subprocess.run([str(Path(sys.executable).parent / "gunicornc"), "-s", str(ctl),
                           "-c", command, "-j"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
