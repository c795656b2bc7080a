"""The third-party notifier example (examples/bbweb-notifier-example), installed with pip
the way a user installs one, enabled in plugins.toml and run by the master daemon.

As for the change-hook example, pip installs it into a directory of this session
(``--target``) that is put on ``sys.path``; the shared virtualenv is never modified.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from bbweb.cli import main
from bbweb.status.builder import FAILURE, SUCCESS
from tests.daemon.conftest import saved_cursor
from tests.notifiers.conftest import MAIL_CFG, Clock, attempts, build
from tests.support.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bbweb-notifier-example"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("notifier-example")
    source = work / "bbweb-notifier-example"
    shutil.copytree(EXAMPLE, source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = work / "site-packages"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
         "--no-index", "--disable-pip-version-check", "--no-input", "--target", str(site),
         str(source)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"pip could not install the example notifier:\n{proc.stdout}\n"
                    f"{proc.stderr}")
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(site))
    mp.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    try:
        yield site
    finally:
        mp.undo()
        sys.modules.pop("bbweb_notifier_example", None)
        shutil.rmtree(site, ignore_errors=True)


class Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # type: ignore[no-untyped-def]  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((self.headers["Idempotency-Key"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):  # type: ignore[no-untyped-def]
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_pip_installed_the_entry_point(installed):
    eps = {ep.name: ep for ep in entry_points(group="bbweb.notifiers")}
    assert eps["webhook"].value == "bbweb_notifier_example:WebhookNotifier"
    assert eps["webhook"].dist.name == "bbweb-notifier-example"
    assert eps["mail"].value == "bbweb.plugins.notifiers.mail:MailNotifier"


def test_enabled_in_plugins_toml_and_run_by_the_daemon(installed, make_master, daemons,
                                                       receiver):
    master = make_master(MAIL_CFG)
    (master.basedir / "plugins.toml").write_text(
        f'[notifiers]\nwebhook = {{ url = "{receiver}", only_failures = true }}\n')
    d = daemons(master.basedir, holder="d")
    wait_for(lambda: saved_cursor(master, "notifier.webhook") is not None,
             what="the webhook notifier to start")
    clock = Clock()
    build(master, "runtests", FAILURE, clock, owner="carol")
    build(master, "docs", SUCCESS, clock)
    build(master, "docs", FAILURE, clock)
    wait_for(lambda: len(Receiver.received) >= 2, what="two POSTs")
    assert d.stop() == 0
    assert [body for _key, body in Receiver.received] == [
        {"builder": "runtests", "number": 0, "result": "failure",
         "text": ["failed", "compile"], "blame": [],
         "url": "http://bb.example.org/builders/runtests/builds/0"},
        {"builder": "docs", "number": 1, "result": "failure",
         "text": ["failed", "compile"], "blame": [],
         "url": "http://bb.example.org/builders/docs/builds/1"}]
    assert len({key for key, _body in Receiver.received}) == 2
    assert [(r.what, r.outcome, r.answer) for r in attempts(master, "webhook")] == [
        ("runtests #0 (failure)", "sent", "204 No Content"),
        ("docs #1 (failure)", "sent", "204 No Content")]


def test_checkconfig_checks_its_options(installed, make_master, capsys):
    master = make_master(MAIL_CFG)
    (master.basedir / "plugins.toml").write_text('[notifiers]\nwebhook = { url = "ftp://x" }\n')
    assert main(["checkconfig", str(master.basedir)]) == 1
    assert ("notifiers.webhook: WebhookNotifier: url='ftp://x' must be an http:// or "
            "https:// URL") in capsys.readouterr().err


def test_the_examples_own_tests_pass_against_the_installed_package(installed, tmp_path):
    tests = tmp_path / "tests"
    shutil.copytree(EXAMPLE / "tests", tests, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tests)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(installed), str(REPO)])))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout
