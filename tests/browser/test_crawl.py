"""Every page a person can reach from the welcome page loads in a real browser: no 404s, no
script errors, no injected markup, and a screenshot of each."""

from __future__ import annotations

import re
from urllib.parse import urldefrag, urlsplit

MAX_PAGES = 150
# Actions change state and feeds/JSON are not pages; everything else is crawled.
NOT_PAGES = re.compile(r"/(json|rss|atom|png|change_hook|api)(/|$|\?)")


def test_crawl_every_page(browser, live_site, screenshots):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    root = live_site.url + "/"
    queue, seen, statuses = [root], {root}, {}
    too_wide: dict[str, list[int]] = {}
    while queue and len(statuses) < MAX_PAGES:
        url = queue.pop(0)
        resp = page.goto(url)
        statuses[url] = resp.status if resp else None
        if resp is None or "text/html" not in resp.headers.get("content-type", ""):
            continue
        width = page.evaluate("[document.documentElement.scrollWidth,"
                              " document.documentElement.clientWidth]")
        if width[0] > width[1]:
            too_wide[url] = width
        name = re.sub(r"[^A-Za-z0-9]+", "_", urlsplit(url).path + "_" + urlsplit(url).query)
        page.screenshot(path=str(screenshots / f"{name.strip('_') or 'root'}.png"),
                        full_page=True)
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            href = urldefrag(href)[0]
            if href.startswith(root) and href not in seen and not NOT_PAGES.search(
                    href[len(root) - 1:]):
                seen.add(href)
                queue.append(href)
    page.close()
    bad = {u: s for u, s in statuses.items() if s != 200}
    assert not bad, bad
    assert not errors, errors
    # at 1200 px (a laptop) no page of this small master needs a horizontal scroll bar
    assert not too_wide, too_wide
    assert not dialogs, f"injected script ran: {dialogs}"
    assert len(statuses) >= 5, sorted(statuses)  # the crawl really went somewhere
    assert (screenshots / "root.png").exists()
