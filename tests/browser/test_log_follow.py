"""A running step's log page follows new output in a real browser, and says when it ends."""

from __future__ import annotations

from urllib.parse import quote

from bbweb.engine import builds as eb
from bbweb.engine import slaves as es
from bbweb.engine.force import force_build


def test_log_page_follows_output_live(browser, live_site, screenshots):
    cfg = live_site.config
    with live_site.db.write() as conn:
        force_build(conn, cfg, ["by hand"], reason="live follow", owner="tester",
                    scheduler=None)
        sid = es.slave_connected(conn, "hand", {})
    with live_site.db.write() as conn:
        claimed = eb.claim_build_request(conn, cfg, "hand", sid)
    with live_site.db.write() as conn:
        step = eb.next_step(conn, cfg, claimed.buildid)
        eb.append_step_log(conn, cfg, step["id"], "stdio", [("o", "first line\n")])

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    url = (f"{live_site.url}/builders/{quote('by hand')}/builds/{claimed.number}"
           f"/steps/{step['name']}/logs/stdio")
    page.goto(url)
    log = page.locator("pre.log")
    assert "first line" in log.inner_text()
    assert "following new output" in page.inner_text("#log-status")

    with live_site.db.write() as conn:
        eb.append_step_log(conn, cfg, step["id"], "stdio",
                           [("e", "<b>second</b> line\n"), ("o", "\x1b[31mred\x1b[0m\n")])
    page.wait_for_function("document.querySelector('pre.log').textContent"
                           ".includes('second')", timeout=15000)
    assert "<b>second</b> line" in log.inner_text()  # shown as text, not markup
    assert page.locator("pre.log b").count() == 0
    assert page.locator("pre.log span.stderr", has_text="second").count() == 1
    assert page.locator("pre.log span.ansi31", has_text="red").count() == 1

    with live_site.db.write() as conn:
        eb.finish_step(conn, cfg, step["id"], 0)
    page.wait_for_function("document.getElementById('log-status').textContent"
                           ".includes('complete')", timeout=15000)
    page.screenshot(path=str(screenshots / "log_follow.png"), full_page=True)
    page.close()
    assert not errors, errors
