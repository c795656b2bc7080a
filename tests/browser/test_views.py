"""The big views in a real browser: each renders without script errors or injected markup,
its result boxes really get the result colours from the stylesheet, and a screenshot of each
is kept (in the test's screenshots directory)."""

from __future__ import annotations

import pytest

# view -> CSS selector of a box for a failed build/step and for a successful one
VIEWS = {
    "waterfall": ("td.BuildStep.failure", "td.BuildStep.success"),
    "grid": ("td.build.failure", "td.build.success"),
    "tgrid": ("td.build.failure", "td.build.success"),
    "console": ("table.console .cbox.failure", "table.console .cbox.success"),
}

# the colour a box really shows, and the stylesheet's colour for its result, both as rgb()
PAINT = """([selector, variable]) => {
    const box = document.querySelector(selector);
    if (!box) return null;
    const probe = document.createElement("div");
    probe.style.background = getComputedStyle(document.documentElement)
        .getPropertyValue(variable).trim();
    document.body.appendChild(probe);
    const want = getComputedStyle(probe).backgroundColor;
    probe.remove();
    return [getComputedStyle(box).backgroundColor, want];
}"""


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_view_renders_with_result_colours(browser, live_site, screenshots, view):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    resp = page.goto(f"{live_site.url}/{view}")
    assert resp is not None and resp.status == 200
    shot = screenshots / f"view-{view}.png"
    page.screenshot(path=str(shot), full_page=True)

    failed, passed = VIEWS[view]
    got_fail = page.evaluate(PAINT, [failed, "--failure"])
    got_pass = page.evaluate(PAINT, [passed, "--success"])
    # the fixture's 'broken' builder failed and 'linux build' passed
    assert got_fail is not None, f"no {failed} box on /{view}"
    assert got_pass is not None, f"no {passed} box on /{view}"
    assert got_fail[0] == got_fail[1], f"/{view}: failure box painted {got_fail[0]}"
    assert got_pass[0] == got_pass[1], f"/{view}: success box painted {got_pass[0]}"
    assert got_fail[0] != got_pass[0]
    # the hostile change text is shown as text, never as markup
    assert page.locator("img[src=x]").count() == 0
    assert not errors, errors
    assert not dialogs, f"injected script ran: {dialogs}"
    assert shot.stat().st_size > 5000  # a real picture, not a blank page
    page.close()


# how many lines each matching cell's text takes, by the line boxes of its text
LINES = """(selector) => [...document.querySelectorAll(selector)].map(cell => {
    const range = document.createRange();
    range.selectNodeContents(cell);
    const tops = new Set([...range.getClientRects()].filter(r => r.width > 0)
                                                   .map(r => Math.round(r.top)));
    return [cell.textContent.trim(), tops.size];
})"""


def test_names_and_times_are_not_broken_across_lines(browser, live_site, screenshots):
    """At a laptop's width the build page's property names and sources ("Scheduler",
    "BuildSlave") stay whole words on one line, as does each time on the builder page;
    the current view's link is the one drawn bold in the header."""
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(f"{live_site.url}/builders/linux%20build/builds/0")
    page.screenshot(path=str(screenshots / "build-properties.png"), full_page=True)
    cells = page.evaluate(LINES, "table.properties td.name, table.properties td.source")
    assert ["scheduler", 1] in cells and ["Scheduler", 1] in cells, cells
    assert [c for c in cells if c[1] != 1] == []
    page.goto(f"{live_site.url}/builders/linux%20build")
    page.screenshot(path=str(screenshots / "builder-times.png"), full_page=True)
    times = page.evaluate(LINES, "table.buildtable td.time")
    assert times and [t for t in times if t[1] != 1] == [], times
    weights = page.evaluate("""() => [...document.querySelectorAll("nav.views a")]
        .map(a => [a.textContent, getComputedStyle(a).fontWeight])""")
    assert [label for label, weight in weights if int(weight) >= 600] == ["Builders"]
    page.close()
