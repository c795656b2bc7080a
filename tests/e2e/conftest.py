"""Real processes: gunicorn web, the daemon and workers, on a free port, per database.

Started once per module and database; tests share the running master and use builders of
their own so they do not disturb each other.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from bbweb.db.connection import Database
from bbweb.db.migrate import upgrade
from bbweb.launcher import gunicorn_command
from bbweb.mastercfg.master import load_master_config
from bbweb.mastercfg.webstatus import ListenAddress
from tests.conftest import _drop_pg_database, _fresh_pg_database
from tests.support.polling import wait_for  # noqa: F401 (re-exported)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveMaster:
    basedir: Path
    url: str
    db_url: str
    db: Database
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def config(self):  # type: ignore[no-untyped-def]
        return load_master_config(self.basedir)

    def spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None
              ) -> subprocess.Popen:
        log = self.basedir / f"{name}.log"
        self.logs[name] = log
        proc = subprocess.Popen(cmd, cwd=self.basedir, stdout=log.open("wb"),
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, BBWEB_BASEDIR=str(self.basedir),
                                         PYTHONUNBUFFERED="1", **(env or {})))
        self.procs[name] = proc
        return proc

    def start_worker(self, name: str, password: str, label: str | None = None
                     ) -> subprocess.Popen:
        return self.spawn(label or f"worker-{name}", [
            sys.executable, "-m", "bbweb.cli", "worker", "--master", self.url, "--name", name,
            "--password", password,
            "--basedir", str(self.basedir / "workers" / (label or name))])

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait()

    def log_text(self, name: str) -> str:
        path = self.logs.get(name)
        return path.read_text(errors="replace") if path and path.exists() else ""

    def get_json(self, path: str, **params: Any) -> Any:
        resp = requests.get(self.url + path, params=params, timeout=10)
        return resp.json() if resp.status_code == 200 else None


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def e2e_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               pg_admin_url: str | None) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite:///" + str(tmp_path_factory.mktemp("e2e-sqlite") / "state.sqlite")
        return
    if pg_admin_url is None:
        pytest.skip("PostgreSQL server binaries are not installed (scripts/test.sh installs "
                    "them)")
    url, name = _fresh_pg_database(pg_admin_url)
    try:
        yield url
    finally:
        _drop_pg_database(pg_admin_url, name)


def start_live_master(basedir: Path, cfg_text: str, db_url: str,
                      daemon: bool = True) -> LiveMaster:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    basedir.mkdir(parents=True, exist_ok=True)
    (basedir / "master.cfg").write_text(
        textwrap.dedent(cfg_text).replace("DB_URL", repr(db_url)).replace("PORT", str(port)))
    cfg = load_master_config(basedir)
    upgrade(cfg.db_url)
    live = LiveMaster(basedir, url, cfg.db_url, Database(cfg.db_url))
    live.spawn("web", gunicorn_command(basedir, ListenAddress("127.0.0.1", port), 2))
    if daemon:
        live.spawn("daemon", [sys.executable, "-m", "bbweb.cli", "master", str(basedir)])

    def web_up() -> bool:
        if live.procs["web"].poll() is not None:
            raise AssertionError("gunicorn exited:\n" + live.log_text("web"))
        try:
            return requests.get(url + "/health", timeout=5).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # starting, or a busy machine
            return False

    wait_for(web_up, 60, what="the web server to answer /health")
    return live


def stop_live_master(live: LiveMaster) -> None:
    for name in [n for n in live.procs if n.startswith("worker")] + ["daemon", "web"]:
        live.stop(name)
    live.db.dispose()


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """A requests session that submits forms with the page's CSRF token."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def post(self, page: str, action: str, data: dict) -> requests.Response:
        html = self.session.get(self.url + page, timeout=10).text
        token = CSRF.search(html)
        assert token, f"no form on {page}"
        resp = self.session.post(self.url + action, data={**data, "csrf_token":
                                                          token.group(1)},
                                 allow_redirects=False, timeout=10)
        assert resp.status_code == 303, resp.text
        return resp

    def get(self, page: str) -> str:
        return self.session.get(self.url + page, timeout=10).text
