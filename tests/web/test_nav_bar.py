"""The header's navigation bar marks where the reader is: the link of the current page
(``aria-current="page"``), or of the section a page belongs to (``aria-current="true"``:
a builder's page under Builders), with the class ``current`` the stylesheet makes bold.
Home is marked on the home page only."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest


class _Nav(HTMLParser):
    """(label, href, classes, aria-current) of each link in ``<nav class="views">``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inside = False
        self.links: list[list[str]] = []
        self.current: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "nav" and a.get("class") == "views":
            self.inside = True
        elif tag == "a" and self.inside:
            self.current = ["", a.get("href") or "", a.get("class") or "",
                            a.get("aria-current") or ""]

    def handle_data(self, data: str) -> None:
        if self.current is not None:
            self.current[0] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.current is not None:
            self.links.append(self.current)
            self.current = None
        elif tag == "nav":
            self.inside = False


def nav_of(client, url: str, **kw) -> list[list[str]]:  # type: ignore[no-untyped-def]
    resp = client.get(url, **kw)
    parser = _Nav()
    parser.feed(resp.get_data(as_text=True))
    assert parser.links, f"no navigation bar on {url}"
    return parser.links


def marked(links: list[list[str]]) -> list[tuple[str, str]]:
    """(label, aria-current) of the marked links; each also has the class ``current``."""
    out = []
    for label, _href, classes, current in links:
        assert ("current" in classes.split()) == bool(current), (label, classes, current)
        if current:
            out.append((label, current))
    return out


@pytest.mark.parametrize(("url", "expected"), [
    ("/", [("Home", "page")]),
    ("/waterfall", [("Waterfall", "page")]),
    ("/console?reload=60", [("Console", "page")]),
    ("/builders", [("Builders", "page")]),
    ("/builders/runtests", [("Builders", "true")]),
    ("/one_line_per_build", [("Recent Builds", "page")]),
    ("/buildslaves", [("Buildslaves", "page")]),
    ("/changes", [("Changesources", "page")]),
    ("/about", [("About", "page")]),
    ("/no/such/page", []),
])
def test_the_current_page_is_marked_and_home_only_at_home(client, url, expected) -> None:
    links = nav_of(client, url)
    assert marked(links) == expected
    home = links[0]
    assert home[0] == "Home" and "home" in home[2].split()
    assert (home[3] == "page") == (url == "/")


def test_marking_works_below_a_path_prefix(client) -> None:
    """Behind a reverse proxy that mounts the site at /ci/ (SCRIPT_NAME), the same links
    are marked."""
    links = nav_of(client, "/waterfall", base_url="http://localhost/ci/")
    assert marked(links) == [("Waterfall", "page")]
    assert ["Waterfall", "./waterfall", "current", "page"] in links
