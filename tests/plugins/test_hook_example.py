"""A third-party change-hook dialect, installed with pip the way a user installs one.

``examples/bbweb-hook-example`` (Example Forge) and a package whose dialect raises on
import are built and installed by ``pip install --no-build-isolation --no-deps --target``
into a directory of this session (pip needs setuptools and wheel in the virtualenv, which
the test extras provide). This module puts that directory on ``sys.path`` (and
``PYTHONPATH`` for the processes it starts), so entry-point discovery finds the packages
through the ``*.dist-info`` pip wrote, and removes it again afterwards: the shared
virtualenv is never modified.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from bbweb.cli import main
from bbweb.db.schema import change_files, changes
from tests.conftest import DEFAULT_CFG

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bbweb-hook-example"
SECRET = "example-secret"

BROKEN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "bbweb-hook-exploding"
version = "0.0.1"

[project.entry-points."bbweb.change_hooks"]
exploding = "bbweb_hook_exploding:ExplodingHook"

[tool.setuptools]
py-modules = ["bbweb_hook_exploding"]
"""
BROKEN_MODULE = "raise RuntimeError('the exploding dialect cannot be imported')\n"

PUSH = {
    "ref": "refs/heads/main",
    "pusher": "alice",
    "repository": {"name": "widget", "clone_url": "https://forge.example/acme/widget.git",
                   "web_url": "https://forge.example/acme/widget"},
    "commits": [
        {"sha": "1111111111111111111111111111111111111111",
         "author": {"name": "Alice", "email": "alice@example.org"},
         "message": "Fix the frobnicator", "timestamp": 1700000000,
         "files": {"added": ["a.c"], "modified": ["b.c"], "removed": []}},
        {"sha": "2222222222222222222222222222222222222222",
         "author": {"name": "Bob", "email": "bob@example.org"},
         "message": "Docs", "timestamp": 1700000060, "files": {"modified": ["README"]}},
    ],
}


@pytest.fixture(scope="session")
def pip_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Both packages built and installed by pip into a fresh directory (removed after)."""
    work = tmp_path_factory.mktemp("hook-example")
    # build from copies, so no build/ or *.egg-info lands in the source tree
    example = work / "bbweb-hook-example"
    shutil.copytree(EXAMPLE, example,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    broken = work / "bbweb-hook-exploding"
    broken.mkdir()
    (broken / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (broken / "bbweb_hook_exploding.py").write_text(BROKEN_MODULE)
    site = work / "site-packages"
    cmd = [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
           "--no-index", "--disable-pip-version-check", "--no-input", "--target", str(site),
           str(example), str(broken)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail("pip could not install the example dialect (the virtualenv needs "
                    f"setuptools and wheel: pip install -e '.[test]'):\n{proc.stdout}\n"
                    f"{proc.stderr}")
    try:
        yield site
    finally:  # what `pip uninstall` would do for a --target install
        shutil.rmtree(site, ignore_errors=True)


@pytest.fixture(scope="module")
def installed(pip_site: Path) -> Iterator[Path]:
    """The pip-installed packages importable in this process and in its children."""
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(pip_site))
    mp.setenv("PYTHONPATH", os.pathsep.join([str(pip_site), os.environ.get("PYTHONPATH", "")]))
    try:
        yield pip_site
    finally:
        mp.undo()
        for module in ("bbweb_hook_example", "bbweb_hook_exploding"):
            sys.modules.pop(module, None)


def signed(payload: dict, delivery: str, event: str = "push",
           secret: str = SECRET) -> dict:
    body = json.dumps(payload).encode()
    return {"data": body, "content_type": "application/json", "headers": {
        "X-Forge-Event": event, "X-Forge-Delivery": delivery,
        "X-Forge-Signature": "sha256=" + hmac.new(secret.encode(), body,
                                                  hashlib.sha256).hexdigest()}}


def count(master, table) -> int:
    with master.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def enable(basedir: Path, toml: str) -> None:
    (basedir / "plugins.toml").write_text(textwrap.dedent(toml))


def test_pip_installed_the_entry_point(installed):
    eps = {ep.name: ep for ep in entry_points(group="bbweb.change_hooks")}
    assert eps["example"].value == "bbweb_hook_example:ExampleForgeHook"
    dist = eps["example"].dist
    assert dist.name == "bbweb-hook-example" and dist.version == "0.1.0"
    assert (dist.read_text("INSTALLER") or "").strip() == "pip"
    assert str(installed) in str(dist.locate_file("bbweb_hook_example/__init__.py"))
    assert eps["exploding"].dist.name == "bbweb-hook-exploding"


def test_installed_but_not_enabled_is_404(installed, make_master):
    m = make_master()
    app = m.app()
    try:
        client = app.test_client()
        resp = client.post("/change_hook/example", **signed(PUSH, "d-0"))
        assert resp.status_code == 404
        enable(m.basedir, "[change_hooks]\nexample = false\n")
        app2 = m.app()
        assert app2.test_client().post("/change_hook/example",
                                       **signed(PUSH, "d-0")).status_code == 404
        app2.extensions["bbweb"].db.dispose()
        assert count(m, changes) == 0
    finally:
        app.extensions["bbweb"].db.dispose()


def test_enabled_in_plugins_toml_produces_changes(installed, make_master):
    m = make_master()
    enable(m.basedir, f'[change_hooks]\nexample = {{secret = "{SECRET}"}}\n')
    app = m.app()
    try:
        assert app.extensions["bbweb"].plugin_failures == {}
        client = app.test_client()
        resp = client.post("/change_hook/example", **signed(PUSH, "d-1"))
        assert resp.status_code == 202, resp.data
        with m.db.read() as conn:
            rows = conn.execute(sa.select(changes).order_by(changes.c.changeid)).all()
            files = [r.filename for r in conn.execute(
                sa.select(change_files).order_by(change_files.c.id))]
        assert [r.revision for r in rows] == [c["sha"] for c in PUSH["commits"]]
        assert rows[0].author == "Alice <alice@example.org>"
        assert (rows[0].branch, rows[0].project, rows[0].src) == ("main", "widget", "git")
        assert rows[0].revlink == ("https://forge.example/acme/widget/commit/"
                                   "1111111111111111111111111111111111111111")
        assert files == ["a.c", "b.c", "README"]
        # the forge retries the same delivery: acknowledged, not stored again
        again = client.post("/change_hook/example", **signed(PUSH, "d-1"))
        assert again.status_code == 200 and again.data == b"already processed\n"
        # unsigned, wrongly signed, GET, tag push
        unsigned = client.post("/change_hook/example", data=json.dumps(PUSH),
                               content_type="application/json",
                               headers={"X-Forge-Event": "push", "X-Forge-Delivery": "d-2"})
        assert unsigned.status_code == 403
        forged = client.post("/change_hook/example", **signed(PUSH, "d-3", secret="guess"))
        assert forged.status_code == 403
        assert client.get("/change_hook/example").status_code == 405
        tag = client.post("/change_hook/example",
                          **signed(dict(PUSH, ref="refs/tags/v1.0"), "d-4"))
        assert tag.status_code == 200 and tag.data.startswith(b"no changes found")
        assert count(m, changes) == 2
    finally:
        app.extensions["bbweb"].db.dispose()


def test_enabled_in_master_cfg(installed, make_master):
    m = make_master(DEFAULT_CFG.replace("change_hook_dialects={'base': True}",
                                        "change_hook_dialects={'example': True}"))
    app = m.app()
    try:
        body = json.dumps(PUSH)
        resp = app.test_client().post("/change_hook/example", data=body,
                                      content_type="application/json",
                                      headers={"X-Forge-Event": "push"})
        assert resp.status_code == 202
        assert count(m, changes) == 2
    finally:
        app.extensions["bbweb"].db.dispose()


def test_a_dialect_that_fails_to_import_leaves_the_others_working(installed, make_master,
                                                                  caplog, capsys):
    m = make_master()
    enable(m.basedir, f'[change_hooks]\nexample = {{secret = "{SECRET}"}}\n'
                      "exploding = true\n")
    with caplog.at_level(logging.ERROR):
        app = m.app()
    try:
        failures = app.extensions["bbweb"].plugin_failures
        assert failures == {"change_hooks.exploding":
                            "RuntimeError: the exploding dialect cannot be imported"}
        assert "'exploding'" in caplog.text and "bbweb_hook_exploding" in caplog.text
        client = app.test_client()
        assert client.post("/change_hook/example", **signed(PUSH, "e-1")).status_code == 202
        assert client.post("/change_hook/base", data={"author": "a"}).status_code == 202
        assert client.post("/change_hook/exploding", data="{}").status_code == 404
        assert count(m, changes) == 3
    finally:
        app.extensions["bbweb"].db.dispose()
    assert main(["checkconfig", str(m.basedir)]) == 1
    err = capsys.readouterr().err
    assert "change_hooks.exploding: RuntimeError: the exploding dialect cannot be " \
           "imported" in err
    enable(m.basedir, f'[change_hooks]\nexample = {{secret = "{SECRET}"}}\n')
    assert main(["checkconfig", str(m.basedir)]) == 0
    enable(m.basedir, "[change_hooks]\nexample = {secret = 42}\n")
    assert main(["checkconfig", str(m.basedir)]) == 1
    assert "change_hooks.example: ValueError: the example dialect's 'secret' option" \
        in capsys.readouterr().err


def test_the_examples_own_tests_pass_against_the_installed_package(installed, tmp_path):
    tests = tmp_path / "tests"
    shutil.copytree(EXAMPLE / "tests", tests,
                    ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tests)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(installed), str(REPO)])))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" in proc.stdout


def test_served_by_real_gunicorn(installed, tmp_path):
    """The gunicorn workers find the pip-installed dialect by themselves."""
    from tests.e2e.conftest import start_live_master, stop_live_master

    basedir = tmp_path / "live"
    basedir.mkdir()
    enable(basedir, f'[change_hooks]\nexample = {{secret = "{SECRET}"}}\nexploding = true\n')
    live = start_live_master(basedir, DEFAULT_CFG.replace("8010", "PORT"),
                             "sqlite:///" + str(tmp_path / "state.sqlite"), daemon=False)
    try:
        req = signed(PUSH, "g-1")
        url = live.url + "/change_hook/example"
        resp = requests.post(url, data=req["data"], timeout=10,
                             headers={**req["headers"], "Content-Type": "application/json"})
        assert resp.status_code == 202, resp.text
        resp = requests.post(url, data=req["data"], timeout=10,
                             headers={**req["headers"], "Content-Type": "application/json"})
        assert resp.status_code == 200 and resp.text == "already processed\n"
        assert "change_hooks.exploding" in live.log_text("web")
        with live.db.read() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(changes)
                                ).scalar_one() == 2
    finally:
        stop_live_master(live)
