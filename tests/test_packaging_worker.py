"""A build host installs only the worker: ``pip install ./worker`` into a fresh virtualenv
(no system site-packages) gives ``bbweb-worker``, which runs builds for a real master with
``requests`` as its only dependency: Flask, SQLAlchemy, gunicorn and the database
drivers are not there to import.

The install is the one a user runs, so pip reaches the package index: for ``requests``
and its dependencies (pinned by constraints.txt) and for setuptools, which pip's isolated
build of ``worker/`` needs. The machines this project's tests run on (developers' and
CI's) reach PyPI; pip's cache makes the repeat runs quick (about 10 s for the module).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bbweb import __version__
from tests.e2e.conftest import start_live_master, stop_live_master, wait_for

REPO = Path(__file__).resolve().parents[1]
MASTER_ONLY = ["flask", "werkzeug", "jinja2", "sqlalchemy", "alembic", "gunicorn", "psycopg",
               "flask_login", "passlib", "bcrypt"]


def clean_env() -> dict[str, str]:
    """The environment for the worker host's programs: nothing that would let them import
    this checkout's (or this virtualenv's) modules."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "BBWEB_BASEDIR")}


@pytest.fixture(scope="module")
def worker_host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with ``pip install ./worker`` done in it; its bin directory."""
    work = tmp_path_factory.mktemp("worker-host")
    # build from a copy of the sources, so no build/ or *.egg-info lands in the checkout
    src = work / "src"
    shutil.copytree(REPO / "bbweb", src / "bbweb",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "worker", src / "worker", symlinks=True,
                    ignore=shutil.ignore_patterns("build", "*.egg-info"))
    shutil.copy(REPO / "LICENSE", src / "LICENSE")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120,
                   env=clean_env())
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
         "--no-input", "-c", str(REPO / "constraints.txt"), str(src / "worker")],
        capture_output=True, text=True, timeout=300, env=clean_env(), cwd=work)
    if proc.returncode != 0:
        pytest.fail("pip install ./worker failed in a fresh virtualenv (it needs the package "
                    f"index for requests and setuptools):\n{proc.stdout}\n{proc.stderr}")
    return venv / "bin"


def run(bin_dir: Path, program: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``program`` (a command of the worker host's virtualenv) with ``args``, started in
    the virtualenv's directory: not in the checkout, whose ``bbweb`` would be importable
    from the working directory."""
    return subprocess.run([str(bin_dir / program), *args], capture_output=True, text=True,
                          timeout=60, env=clean_env(), cwd=bin_dir.parent)


def test_only_the_worker_and_requests_are_installed(worker_host):
    probe = run(worker_host, "python", "-I", "-c", """if True:
        import importlib.metadata as md, importlib.util, json
        dists = sorted(d.metadata["Name"].lower() for d in md.distributions())
        files = sorted(str(f) for f in md.files("bbweb-worker") if str(f).endswith(".py"))
        import bbweb.worker.cli, bbweb.worker.main  # the worker imports without the master
        print(json.dumps({"dists": dists, "files": files}))
    """)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert set(found["dists"]) == {"bbweb-worker", "requests", "urllib3", "idna",
                                   "charset-normalizer", "certifi", "pip", "setuptools"}
    worker_modules = sorted(f"bbweb/worker/{p.name}" for p in (REPO / "bbweb/worker").glob("*.py"))
    assert found["files"] == sorted(["bbweb/__init__.py", *worker_modules])


@pytest.mark.parametrize("module", MASTER_ONLY + ["bbweb.app", "bbweb.cli"])
def test_the_masters_modules_are_not_importable(worker_host, module):
    probe = run(worker_host, "python", "-I", "-c", f"import {module}")
    assert probe.returncode == 1
    assert "ModuleNotFoundError" in probe.stderr, probe.stderr


def test_bbweb_worker_command(worker_host, tmp_path):
    helped = run(worker_host, "bbweb-worker", "--help")
    assert helped.returncode == 0, helped.stderr
    for option in ("--master", "--name", "--password", "--basedir"):
        assert option in helped.stdout
    version = run(worker_host, "bbweb-worker", "--version")
    assert version.stdout.strip() == f"bbweb-worker {__version__}"
    no_password = run(worker_host, "bbweb-worker", "--master", "http://127.0.0.1:9",
                      "--name", "w", "--basedir", str(tmp_path / "w"))
    assert no_password.returncode == 2
    assert "give --password or set BBWEB_WORKER_PASSWORD" in no_password.stderr


CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('host-1', 'pw-host-1')]
f = BuildFactory()
f.addStep(ShellCommand(name='hello', command=['sh', '-c', 'echo built on $(hostname)']))
c['builders'] = [BuilderConfig(name='on-host', slavenames=['host-1'], factory=f)]
c['schedulers'] = [SingleBranchScheduler(name='all', branch=None, builderNames=['on-host'])]
c['status'] = [WebStatus(http_port=PORT, change_hook_dialects={'base': True})]
"""


@pytest.fixture
def live(tmp_path) -> Iterator:  # type: ignore[no-untyped-def]
    db_url = "sqlite:///" + str(tmp_path / "state.sqlite")
    master = start_live_master(tmp_path / "master", CFG, db_url)
    try:
        yield master
    finally:
        stop_live_master(master)


def test_worker_host_builds_for_a_master(worker_host, live, tmp_path):
    """The worker-only install claims a build from a real master and runs it."""
    live.spawn("worker-host-1", [str(worker_host / "bbweb-worker"), "--master", live.url,
                                 "--name", "host-1", "--basedir", str(tmp_path / "host-1")],
               env={"BBWEB_WORKER_PASSWORD": "pw-host-1", "PYTHONPATH": ""})
    resp = requests.post(live.url + "/change_hook/base",
                         data={"author": "carol", "comments": "build me"}, timeout=30)
    assert resp.status_code == 202, resp.text

    def finished():
        build = live.get_json("/json/builders/on-host/builds/0")
        return build if build and build.get("results") is not None else None

    try:
        build = wait_for(finished, 60, what="the worker host's build to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; worker log:\n{live.log_text('worker-host-1')}") from None
    assert build["results"] == 0, live.log_text("worker-host-1")
    assert build["slave"] == "host-1"
    assert [s["name"] for s in build["steps"]] == ["hello"]
