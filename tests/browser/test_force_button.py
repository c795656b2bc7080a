"""A person logs in with the header's form and presses Force on a builder page in a real
browser; the build runs and the page says who forced it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import LiveMaster, start_live_master, stop_live_master
from tests.support.polling import wait_for

CFG = r"""
from bbweb.config import *
from bbweb.auth import Authz
from bbweb.auth.backends import BasicAuth
c = BuildmasterConfig = {}
c['buildbotURL'] = 'http://127.0.0.1:PORT/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('fw1', 'pw', keepalive_interval=1)]
c['builders'] = [BuilderConfig(name='pressme', slavenames=['fw1'], factory=BuildFactory(
    [ShellCommand(name='hello', command=['echo', 'hello'])]))]
c['schedulers'] = [ForceScheduler(name='force', builderNames=['pressme'])]
c['status'] = [WebStatus(http_port=PORT, authz=Authz(auth=BasicAuth([('alice', 's3cret')]),
                                                     forceBuild='auth'))]
"""


@pytest.fixture(scope="module")
def force_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveMaster]:
    base = tmp_path_factory.mktemp("force-browser")
    live = start_live_master(base / "master", CFG, "sqlite:///" + str(base / "state.sqlite"))
    try:
        live.start_worker("fw1", "pw")
        yield live
    finally:
        stop_live_master(live)


def test_log_in_and_press_force(browser, force_site):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(force_site.url + "/builders/pressme")
    # anonymous: the form is advertised ('auth'), pressing it asks to log in
    page.fill("form.login input[name=username]", "alice")
    page.fill("form.login input[name=passwd]", "s3cret")
    page.click("form.login button[type=submit]")
    page.goto(force_site.url + "/builders/pressme")
    form = page.locator("form.command_forcebuild")
    assert form.count() == 1
    assert page.locator("form.command_forcebuild input[name=username]").count() == 0
    form.locator("input[name=reason]").fill("pressed in a browser")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert "/builders/pressme" in page.url
    flash = page.locator("li.flash").inner_text()
    assert "Forced a build of pressme by alice: pressed in a browser" in flash

    def built() -> bool:
        page.goto(force_site.url + "/builders/pressme/builds/0")
        return "SUCCESS" in page.content()

    wait_for(built, 30, what="the forced build to succeed", interval=0.5)
    assert "A build was forced by &#39;alice&#39;: pressed in a browser" in page.content() \
        or "A build was forced by 'alice': pressed in a browser" in page.inner_text("body")
    assert not errors, errors
    page.close()
