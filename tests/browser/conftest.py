"""A real headless Chromium (Debian's) driven by Playwright, against a live master.

The master runs under real gunicorn with a real worker, so pages show builds that really
ran. One browser and one master for the whole module.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import LiveMaster, start_live_master, stop_live_master
from tests.support.polling import wait_for

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-default-apps", "--disable-dev-shm-usage"]

HOSTILE = '<script>alert("x")</script>"><img src=x onerror=alert(1)>'

CFG = r"""
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Browser <Test>'
c['titleURL'] = 'http://example.org/'
c['buildbotURL'] = 'http://127.0.0.1:PORT/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('bw1', 'pw', keepalive_interval=1), BuildSlave('hand', 'pw')]
f = BuildFactory()
f.addStep(ShellCommand(name='greet', command=['sh', '-c',
    'printf "\\033[1;32mgreen bold\\033[0m plain\\n"; echo oops >&2']))
f.addStep(ShellCommand(name='slow', command=['sh', '-c',
    'echo begin; sleep 1; echo end']))
bad = BuildFactory([ShellCommand(name='break', command=['sh', '-c', 'exit 1'],
                                 haltOnFailure=True),
                    ShellCommand(name='skipped', command=['true'])])
c['builders'] = [
    BuilderConfig(name='linux build', slavenames=['bw1'], factory=f, category='core'),
    BuilderConfig(name='broken', slavenames=['bw1'], factory=bad),
    # built by hand through the engine (no worker runs 'hand'), for live-follow tests
    BuilderConfig(name='by hand', slavenames=['hand'], factory=f),
]
c['schedulers'] = [AnyBranchScheduler(name='all',
                                         builderNames=['linux build', 'broken'])]
c['status'] = [WebStatus(http_port=PORT, change_hook_dialects={'base': True})]
"""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed ('.[test]' has it)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def live_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveMaster]:
    """A live master (SQLite) with two finished builds from a change with hostile text."""
    base = tmp_path_factory.mktemp("browser")
    live = start_live_master(base / "master", CFG, "sqlite:///" + str(base / "state.sqlite"))
    try:
        live.start_worker("bw1", "pw")
        import requests

        resp = requests.post(live.url + "/change_hook/base", timeout=10, data={
            "author": f"Mallory {HOSTILE} <m@example.org>", "comments": f"fix {HOSTILE}",
            "revision": "abc123def4567890", "branch": f"main{HOSTILE}",
            "files": '["src/<b>x</b>.c"]', "repository": "git://example.org/r.git"})
        assert resp.status_code == 202, resp.text

        def both_finished() -> bool:
            docs = [live.get_json(f"/json/builders/{b}/builds/0") for b in
                    ("linux%20build", "broken")]
            return all(d and d.get("results") is not None for d in docs)

        wait_for(both_finished, 60, what="the browser fixture's builds to finish")
        yield live
    finally:
        stop_live_master(live)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")
