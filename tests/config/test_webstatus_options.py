"""WebStatus deployment options: distrib_port, http.log rotation, and what gunicorn gets."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from bbweb.cli import main
from bbweb.config import ConfigErrors, load_master_config
from bbweb.launcher import STREAM_SLOTS, gunicorn_command
from bbweb.mastercfg.webstatus import ListenAddress, UnixSocketAddress, WebStatus
from bbweb.web.accesslog import MAX_ROTATED_FILES_VAR, ROTATE_LENGTH_VAR
from bbweb.web.events import STREAM_SLOTS_VAR

HEADER = """\
from bbweb.config import *
c = BuildmasterConfig = {}
"""


def write(tmp_path: Path, status_line: str) -> Path:
    (tmp_path / "master.cfg").write_text(HEADER + textwrap.dedent(status_line))
    return tmp_path


def binds(cmd: list[str]) -> list[str]:
    return [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--bind"]


def envs(cmd: list[str]) -> dict[str, str]:
    return dict(cmd[i + 1].split("=", 1) for i, arg in enumerate(cmd) if arg == "--env")


@pytest.mark.parametrize(("value", "expected"), [
    (8011, ListenAddress("0.0.0.0", 8011)),
    ("8011", ListenAddress("0.0.0.0", 8011)),
    ("tcp:8011", ListenAddress("0.0.0.0", 8011)),
    ("tcp:8011:interface=127.0.0.1", ListenAddress("127.0.0.1", 8011)),
    ("unix:/run/bbweb/web.sock", UnixSocketAddress("/run/bbweb/web.sock")),
    ("unix:address=/run/bbweb/web.sock", UnixSocketAddress("/run/bbweb/web.sock")),
    ("/run/bbweb/web.sock", UnixSocketAddress("/run/bbweb/web.sock")),  # 0.8: "/" = unix
    ("./web.sock", UnixSocketAddress("./web.sock")),
    ("unix:web.sock", UnixSocketAddress("web.sock")),
    ("~/web.sock", UnixSocketAddress(os.path.expanduser("~/web.sock"))),
])
def test_distrib_port_forms(value, expected):
    assert WebStatus(http_port=8010, distrib_port=value).distrib == expected


@pytest.mark.parametrize("value", [
    "ssl:8011", "tcp:abc", "tcp:8011:mode=1", "tcp:0", "unix:", "unix:/x.sock:mode=660",
    "web.sock", True, 1.5, ["tcp:8011"],
])
def test_distrib_port_errors_name_the_option(tmp_path, value):
    write(tmp_path, f"c['status'] = [WebStatus(http_port=8010, distrib_port={value!r})]\n")
    with pytest.raises(ConfigErrors) as exc:
        load_master_config(tmp_path)
    message = str(exc.value)
    assert "distrib_port" in message
    assert f"{tmp_path.resolve() / 'master.cfg'}:3" in message


def test_distrib_port_same_as_http_port_is_an_error():
    with pytest.raises(ConfigErrors, match="distrib_port .* same port as http_port"):
        WebStatus(http_port="tcp:8010:interface=127.0.0.1", distrib_port=8010)
    # other interface, same port: allowed
    WebStatus(http_port="tcp:8010:interface=127.0.0.1",
              distrib_port="tcp:8010:interface=127.0.0.2")


def test_gunicorn_gets_a_second_bind(tmp_path):
    listen = ListenAddress("127.0.0.1", 8010)
    cmd = gunicorn_command(tmp_path, listen, 2, WebStatus(distrib_port="tcp:8011"))
    assert binds(cmd) == ["127.0.0.1:8010", "0.0.0.0:8011"]
    cmd = gunicorn_command(tmp_path, listen, 2, WebStatus(distrib_port="./run/web.sock"))
    assert binds(cmd) == ["127.0.0.1:8010", f"unix:{tmp_path.resolve() / 'run/web.sock'}"]
    cmd = gunicorn_command(tmp_path, listen, 2, WebStatus(distrib_port="unix:/srv/w.sock"))
    assert binds(cmd) == ["127.0.0.1:8010", "unix:/srv/w.sock"]
    assert binds(gunicorn_command(tmp_path, listen, 2, WebStatus())) == ["127.0.0.1:8010"]


def test_gunicorn_command_reads_master_cfg_when_not_given_options(tmp_path):
    write(tmp_path, """
        c['status'] = [WebStatus(http_port=8010, distrib_port='unix:web.sock',
                                 rotateLength=5000, maxRotatedFiles=3)]
    """)
    cmd = gunicorn_command(tmp_path, ListenAddress("127.0.0.1", 8010), 2)
    assert binds(cmd)[1] == f"unix:{tmp_path.resolve() / 'web.sock'}"
    assert envs(cmd) == {ROTATE_LENGTH_VAR: "5000", MAX_ROTATED_FILES_VAR: "3",
                         STREAM_SLOTS_VAR: str(STREAM_SLOTS)}
    assert cmd[cmd.index("--logger-class") + 1] == "bbweb.web.accesslog.AccessLogger"
    assert cmd[cmd.index("--access-logfile") + 1] == str(tmp_path / "http.log")


def test_log_rotation_defaults_and_aliases():
    web = WebStatus()
    assert (web.logRotateLength, web.maxRotatedFiles) == (10_000_000, 10)
    assert WebStatus(rotateLength=1000).logRotateLength == 1000
    assert WebStatus(logRotateLength=2000).logRotateLength == 2000
    assert WebStatus(logRotateLength=2000, rotateLength=2000).logRotateLength == 2000


@pytest.mark.parametrize(("args", "option"), [
    ("logRotateLength=0", "logRotateLength"),
    ("rotateLength='big'", "logRotateLength"),
    ("logRotateLength=True", "logRotateLength"),
    ("maxRotatedFiles=0", "maxRotatedFiles"),
    ("maxRotatedFiles=2.5", "maxRotatedFiles"),
    ("logRotateLength=1000, rotateLength=2000", "logRotateLength and rotateLength"),
])
def test_log_rotation_errors(tmp_path, capsys, args, option):
    write(tmp_path, f"c['status'] = [WebStatus(http_port=8010, {args})]\n")
    assert main(["checkconfig", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert option in out.err and "master.cfg:3" in out.err
