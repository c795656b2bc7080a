"""``bbweb sendchange`` as a subprocess, over real HTTP, with the option names of Buildbot's
``contrib/post_build_request.py`` and the older sendchange spellings.

The master is the Flask application behind werkzeug's HTTP server in a thread of this
process, on both databases.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from bbweb.cli import build_parser, parse_properties
from bbweb.db.schema import change_files, change_properties, changes
from tests.conftest import DEFAULT_CFG

CFG = DEFAULT_CFG.replace(
    "change_hook_dialects={'base': True}",
    "change_hook_dialects={'base': {'allow_properties': True}}, "
    "change_hook_auth=[('hooker', 'pw'), ('ci', 'ci-pw')]")


@dataclass
class Server:
    master: object
    host: str  # host:port

    def changes(self) -> list[dict]:
        with self.master.db.read() as conn:  # type: ignore[attr-defined]
            out = []
            for row in conn.execute(sa.select(changes).order_by(changes.c.changeid)):
                files = [r.filename for r in conn.execute(
                    sa.select(change_files.c.filename)
                    .where(change_files.c.changeid == row.changeid)
                    .order_by(change_files.c.id))]
                props = {r.name: json.loads(r.value) for r in conn.execute(
                    sa.select(change_properties)
                    .where(change_properties.c.changeid == row.changeid))}
                out.append(dict(row._mapping, files=files, properties=props))
            return out


@pytest.fixture
def server(make_master) -> Iterator[Server]:
    m = make_master(CFG)
    app = m.app()
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(m, f"127.0.0.1:{httpd.server_port}")
    finally:
        httpd.shutdown()
        thread.join(10)
        app.extensions["bbweb"].db.dispose()


def sendchange(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bbweb.cli", "sendchange", *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd)


def test_post_build_request_options(server):
    proc = sendchange(
        "-H", server.host, "-u", "/change_hook/base", "--auth", "hooker:pw",
        "-w", "Alice <alice@example.org>", "-f", "src/a.c", "-f", "README",
        "-c", "fix the frobnicator", "-R", "abc123", "-W", "1700000000.5", "-b", "main",
        "-C", "bugfix", "--revlink", "http://vcs/abc123", "-p", "ticket=42",
        "-p", "{'urgent': True, 'tags': ['a', 'b']}", "-r", "git://r", "-P", "frob")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "change sent successfully\n"
    [ch] = server.changes()
    assert ch["author"] == "Alice <alice@example.org>"
    assert ch["comments"] == "fix the frobnicator"
    assert (ch["revision"], ch["branch"], ch["category"]) == ("abc123", "main", "bugfix")
    assert ch["when_timestamp"] == 1700000000.5
    assert (ch["revlink"], ch["repository"], ch["project"]) == (
        "http://vcs/abc123", "git://r", "frob")
    assert ch["files"] == ["src/a.c", "README"]
    # NAME=VALUE values stay strings; the dict literal keeps its types
    assert ch["properties"] == {"ticket": "42", "urgent": True, "tags": ["a", "b"]}


def test_older_sendchange_spellings_still_work(server):
    proc = sendchange("--master", "http://" + server.host + "/", "--urlpath",
                      "change_hook/base", "--auth", "ci:ci-pw", "--author", "bob",
                      "-m", "via -m", "--codebase", "lib", "-p", "k:v", "one.c", "two.c")
    assert proc.returncode == 0, proc.stderr
    [ch] = server.changes()
    assert (ch["author"], ch["comments"], ch["codebase"]) == ("bob", "via -m", "lib")
    assert ch["files"] == ["one.c", "two.c"]
    assert ch["properties"] == {"k": "v"}


def test_verbose_prints_status_and_raw_response(server):
    proc = sendchange("-H", server.host, "--auth", "hooker:pw", "-w", "a", "-v")
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[0].upper() == "202 ACCEPTED"
    proc = sendchange("-H", server.host, "--auth", "hooker:pw", "-w", "a", "-vv",
                      "-u", "/change_hook/nosuch")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].upper() == "404 NOT FOUND"
    assert lines[1].startswith("Raw response: The dialect specified, 'nosuch'")
    assert "the master answered 404" in proc.stderr


def test_testing_prints_and_sends_nothing(server):
    proc = sendchange("-t", "-H", server.host, "-w", "carol", "-c", "hi", "-f", "x",
                      "-p", "a=b", "-r", "repo", "-P", "proj")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == ("params: author=carol&comments=hi&repository=repo&project=proj&"
                      "files=%5B%22x%22%5D&properties=%7B%22a%22%3A+%22b%22%7D")
    assert out[1:] == [f"host: {server.host}", "urlpath: /change_hook/base"]
    assert server.changes() == []


def test_refusals_are_nonzero_exits(server):
    proc = sendchange("-H", server.host, "-w", "a")  # no credentials
    assert proc.returncode == 1 and "answered 401" in proc.stderr
    proc = sendchange("-H", server.host, "--auth", "hooker:pw", "-w", "a",
                      "-p", "owner=mallory@example.org")
    assert proc.returncode == 1
    assert "answered 400: property 'owner' is reserved" in proc.stderr
    assert server.changes() == []


def test_properties_are_never_evaluated(server, tmp_path):
    marker = tmp_path / "pwned"
    for prop in (f"{{'a': __import__('os').system('touch {marker}')}}", "noequals",
                 "=value", "{1: 2}", "{'a': {1, 2}}"):
        proc = sendchange("-H", server.host, "--auth", "hooker:pw", "-w", "a", "-p", prop,
                          cwd=tmp_path)
        assert proc.returncode == 2, prop
        assert "property" in proc.stderr
    assert not marker.exists()
    assert server.changes() == []


def test_unreachable_master(tmp_path):
    proc = sendchange("-H", "127.0.0.1:9", "-w", "a")
    assert proc.returncode == 1 and "cannot reach http://127.0.0.1:9" in proc.stderr


def test_parser_defaults_match_post_build_request():
    args = build_parser().parse_args(["sendchange"])
    assert args.master == "localhost:8010" and args.urlpath == "/change_hook/base"
    assert args.sendchange_verbose == 0 and args.testing is False
    # bbweb's own -v (debug logging) before the command is a different option
    args = build_parser().parse_args(["-v", "sendchange", "-vv"])
    assert args.verbose is True and args.sendchange_verbose == 2
    assert parse_properties(["a=b=c", "x:y", '{"n": 1}']) == {"a": "b=c", "x": "y", "n": 1}
