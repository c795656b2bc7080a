"""The build and builder pages follow the live status stream in a real browser: steps
finish, the log grows and the build ends on screen without the page being reloaded."""

from __future__ import annotations

from urllib.parse import quote

import requests

from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.force import force_build

NOT_RELOADED = "window.__notReloaded === true"


def _start_by_hand(live_site):  # type: ignore[no-untyped-def]
    cfg = live_site.config
    with live_site.db.write() as conn:
        force_build(conn, cfg, ["by hand"], reason="live page", owner="tester",
                    scheduler=None)
        sid = es.slave_connected(conn, "hand", {})
    with live_site.db.write() as conn:
        claimed = eb.claim_build_request(conn, cfg, "hand", sid)
    with live_site.db.write() as conn:
        step = eb.next_step(conn, cfg, claimed.buildid)
        eb.append_step_log(conn, cfg, step["id"], "stdio", [("o", "before the page\n")])
    return claimed, step


def test_build_page_shows_steps_finishing_and_the_log_growing(browser, live_site,
                                                             screenshots):
    cfg = live_site.config
    claimed, step = _start_by_hand(live_site)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_site.url}/builders/{quote('by hand')}/builds/{claimed.number}")
    assert "Build In Progress" in page.inner_text("main")
    assert page.locator("meta[http-equiv=refresh]").count() == 0
    page.evaluate("window.__notReloaded = true")
    # the running step's log, from its start, as text
    page.wait_for_function("(document.getElementById('live-logs') || {textContent: ''})"
                           ".textContent.includes('before the page')", timeout=15000)

    hostile = '<img src=x onerror="window.__owned=1">'
    with live_site.db.write() as conn:
        eb.append_step_log(conn, cfg, step["id"], "stdio",
                           [("o", "compiling\n"), ("e", hostile + "\n")])
    page.wait_for_function("document.getElementById('live-logs').textContent"
                           ".includes('compiling')", timeout=15000)
    logs = page.locator("#live-logs")
    assert hostile in logs.inner_text()
    assert logs.locator("img").count() == 0
    assert logs.locator("span.stderr", has_text="onerror").count() == 1

    with live_site.db.write() as conn:
        eb.finish_step(conn, cfg, step["id"], 0)
        second = eb.next_step(conn, cfg, claimed.buildid)
    first = page.locator("[data-live-region=build-steps] li .step").first
    page.wait_for_function("document.querySelector('[data-live-region=build-steps] li .step')"
                           ".classList.contains('success')", timeout=15000)
    assert "greet" in first.inner_text()
    with live_site.db.write() as conn:
        eb.append_step_log(conn, cfg, second["id"], "stdio", [("o", "second step says hi\n")])
    page.wait_for_function("document.getElementById('live-logs').textContent"
                           ".includes('second step says hi')", timeout=15000)

    with live_site.db.write() as conn:
        eb.finish_step(conn, cfg, second["id"], 2)
        assert eb.next_step(conn, cfg, claimed.buildid) is None
    page.wait_for_function("document.querySelector('[data-live-region=build-state]')"
                           ".textContent.includes('FAILURE')", timeout=15000)
    assert page.evaluate(NOT_RELOADED)
    assert page.evaluate("window.__owned === undefined")
    page.screenshot(path=str(screenshots / "live_build.png"), full_page=True)
    page.close()
    assert not errors, errors


def test_builder_page_shows_a_real_build_come_and_go(browser, live_site):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_site.url}/builders/{quote('linux build')}")
    assert "No current builds" in page.inner_text("[data-live-region=builder-builds]")
    before = page.locator("[data-live-region=builder-builds] table tr").count()
    page.evaluate("window.__notReloaded = true")
    waterfall = browser.new_page()
    waterfall.on("pageerror", lambda exc: errors.append(str(exc)))
    waterfall.goto(f"{live_site.url}/waterfall")
    assert "watch me" not in waterfall.inner_text("[data-live-region=waterfall-table]")
    waterfall.evaluate("window.__notReloaded = true")
    resp = requests.post(live_site.url + "/change_hook/base", timeout=10, data={
        "author": "Live <l@example.org>", "comments": "watch me", "branch": "main",
        "revision": "feedface"})
    assert resp.status_code == 202
    # the build ('slow' takes a second) shows as current, then among the recent ones
    page.wait_for_function("document.querySelector('[data-live-region=builder-builds]')"
                           ".textContent.includes('Current Builds')", timeout=30000)
    page.wait_for_function(
        f"document.querySelectorAll('[data-live-region=builder-builds] table tr').length"
        f" > {before} && document.querySelector('[data-live-region=builder-builds]')"
        ".textContent.includes('No current builds')", timeout=60000)
    assert page.evaluate(NOT_RELOADED)
    # the waterfall has the change and the build in its rows, also without a reload
    waterfall.wait_for_function("document.querySelector('[data-live-region=waterfall-table]')"
                                ".textContent.includes('watch me')", timeout=30000)
    assert waterfall.evaluate(NOT_RELOADED)
    waterfall.close()
    page.close()
    assert not errors, errors


def test_pages_work_without_javascript(browser, live_site):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_site.url}/builders/{quote('linux build')}/builds/0")
    assert "Results:" in page.inner_text("main")
    page.goto(f"{live_site.url}/waterfall")
    assert page.locator("table.waterfall").count() == 1
    context.close()
