"""A database that cannot be connected to is told in one line by the real ``bbweb``
commands (upgrade-master, start, master, checkconfig --connect) and by ``gunicorn
wsgi:app``: the URL with its password hidden and the reason (down, wrong password, no such
database, no driver installed), and a non-zero exit; never a driver traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_CFG, write_master_cfg

REPO = Path(__file__).resolve().parents[2]

COMMANDS = (["upgrade-master"], ["start", "--local-worker", "none"], ["master"],
            ["checkconfig", "--connect"])


def bbweb(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bbweb.cli", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def closed_port() -> int:
    """A loopback port nothing listens on (bound once to pick it, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def master_with(tmp_path: Path, db_url: str) -> Path:
    basedir = tmp_path / "master"
    write_master_cfg(basedir, DEFAULT_CFG, db_url)
    return basedir


def assert_one_line(result: subprocess.CompletedProcess[str], shown_url: str,
                    reason: str) -> None:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"bbweb: cannot connect to the database {shown_url}: {reason}")
    assert "Traceback" not in result.stderr + result.stdout
    assert "secret" not in result.stderr + result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_closed_port_is_connection_refused(tmp_path: Path, command: list[str]) -> None:
    port = closed_port()
    basedir = master_with(tmp_path, f"postgresql://u:secret@127.0.0.1:{port}/x")
    result = bbweb(*command, str(basedir))
    assert_one_line(result, f"postgresql://u:***@127.0.0.1:{port}/x", "connection refused")
    # nothing was started or created
    assert not (basedir / "http.log").exists()
    assert not (basedir / "workers").exists()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word (a hung server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def test_a_server_that_does_not_answer_is_a_timeout(tmp_path: Path,
                                                    silent_server: int) -> None:
    url = f"postgresql://u:secret@127.0.0.1:{silent_server}/x?connect_timeout=1"
    basedir = master_with(tmp_path, url)
    started = time.monotonic()
    result = bbweb("upgrade-master", str(basedir))
    assert time.monotonic() - started < 30
    assert_one_line(result, url.replace("secret", "***"), "timeout")


def _with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':', 1)[0]}:{password}@{host}"


def _shown(url: str) -> str:
    return "postgresql://" + _with_password(url, "***").split("://", 1)[1]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_wrong_password_is_authentication_failed(tmp_path: Path, pg_admin_url: str | None,
                                                   command: list[str]) -> None:
    if pg_admin_url is None:
        pytest.skip("no PostgreSQL server (scripts/test.sh starts one)")
    url = _with_password(pg_admin_url, "not-the-secret")
    result = bbweb(*command, str(master_with(tmp_path, url)))
    assert_one_line(result, _shown(url), "authentication failed")


def test_a_missing_database_is_told(tmp_path: Path, pg_admin_url: str | None) -> None:
    if pg_admin_url is None:
        pytest.skip("no PostgreSQL server (scripts/test.sh starts one)")
    url = pg_admin_url.rsplit("/", 1)[0] + "/no_such_database"
    basedir = master_with(tmp_path, url)
    for command in (["upgrade-master"], ["checkconfig", "--connect"]):
        assert_one_line(bbweb(*command, str(basedir)), _shown(url), "database does not exist")


def test_checkconfig_connect_succeeds_on_a_reachable_database(tmp_path: Path,
                                                             db_url: str) -> None:
    basedir = master_with(tmp_path, db_url)
    if db_url.startswith("sqlite"):
        # --connect does not create the SQLite file; upgrade-master does
        missing = bbweb("checkconfig", "--connect", str(basedir))
        assert missing.returncode == 1
        assert "the database file does not exist" in missing.stderr
        assert not Path(db_url[len("sqlite:///"):]).exists()
        assert bbweb("upgrade-master", str(basedir)).returncode == 0
    result = bbweb("checkconfig", "--connect", str(basedir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == [
        f"database {_shown(db_url) if '@' in db_url else db_url}: connected",
        "Config file is good!"]


# ``psycopg`` made unimportable for one process, as in an install of plain ``bbweb``
# (without the postgresql extra): None in sys.modules makes ``import psycopg`` fail.
WITHOUT_PSYCOPG = "import sys; sys.modules['psycopg'] = None; "
MISSING_DRIVER = "psycopg is not installed: install bbweb[postgresql] (psycopg) for PostgreSQL"


@pytest.mark.parametrize("command", [*COMMANDS, ["checkconfig"]], ids=" ".join)
def test_postgresql_without_psycopg_says_which_extra_to_install(tmp_path: Path,
                                                                command: list[str]) -> None:
    url = f"postgresql://u:secret@127.0.0.1:{closed_port()}/x"
    basedir = master_with(tmp_path, url)
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG + "import runpy; sys.argv[0] = 'bbweb'; "
         "runpy.run_module('bbweb.cli', run_name='__main__')", *command, str(basedir)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert_one_line(result, url.replace("secret", "***"), MISSING_DRIVER)


def test_gunicorn_without_psycopg_says_which_extra_to_install(tmp_path: Path) -> None:
    """``gunicorn wsgi:app`` at the top of the checkout: gunicorn.conf.py tells it once,
    before any web process starts."""
    url = f"postgresql://u:secret@127.0.0.1:{closed_port()}/x"
    basedir = master_with(tmp_path, url)
    env = {k: v for k, v in os.environ.items() if k != "GUNICORN_CMD_ARGS"}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG + "from gunicorn.app.wsgiapp import run; "
         "sys.argv = ['gunicorn', 'wsgi:app']; run()"],
        cwd=REPO, env=dict(env, BBWEB_BASEDIR=str(basedir)), capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL)
    assert_one_line(result, url.replace("secret", "***"), MISSING_DRIVER)
