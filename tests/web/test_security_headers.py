"""Headers and links that keep the site safe whatever it serves: ``nosniff`` on every
answer, a frame policy on every page, ``c['titleURL']`` only as a web link, no JSONP on a
private site, and change-hook answers that are always one text/plain line."""

from __future__ import annotations

import base64
import re

import pytest

from tests.auth.conftest import USERS, authz_cfg
from tests.conftest import DEFAULT_CFG
from tests.support.history import claim, force, run

HTML_PAGES = ["/", "/waterfall", "/grid", "/tgrid", "/console", "/builders",
              "/builders/runtests", "/builders/runtests/builds/0", "/changes", "/about",
              "/buildslaves", "/one_line_per_build", "/json/help", "/nosuchpage"]
OTHER = ["/rss", "/atom", "/png?builder=runtests", "/badge.svg?builder=runtests", "/json",
         "/json/builders/runtests/builds/0", "/json/project?callback=show",
         "/builders/runtests/builds/0/steps/hello/logs/stdio/text", "/default.css",
         "/health", "/change_hook/base"]
HREF = re.compile(r'href="([^"]*)"')


@pytest.fixture
def built(make_master):  # type: ignore[no-untyped-def]
    """A public site with one finished build (and a force scheduler for it)."""
    m = make_master(DEFAULT_CFG + "\nc['schedulers'].append(ForceScheduler("
                                  "name='force', builderNames=['runtests']))\n")
    force(m, "runtests")
    claimed = claim(m, "slave1", 1000.0)
    run(m, claimed.buildid, {}, 1001.0)
    app = m.app()
    yield m, app.test_client()
    app.extensions["bbweb"].db.dispose()


def test_every_answer_is_nosniff_and_pages_are_framed_only_by_the_site(built):
    _m, client = built
    for path in HTML_PAGES + OTHER:
        resp = client.get(path)
        assert resp.status_code < 500, path
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", path
        assert resp.headers.get("X-Frame-Options") == "SAMEORIGIN", path
        assert "frame-ancestors 'self'" in resp.headers.get("Content-Security-Policy", ""), \
            path
    assert client.get("/rss").mimetype.endswith("xml")
    assert client.get("/png?builder=runtests").mimetype == "image/png"


@pytest.mark.parametrize("title_url", [
    "javascript:alert(document.cookie)", " JaVaScRiPt:alert(1)", "java\tscript:alert(1)",
    "\x01javascript:alert(1)", "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
])
def test_title_url_with_a_script_scheme_is_not_a_link(make_master, title_url):
    cfg = DEFAULT_CFG.replace("c['titleURL'] = 'http://example.org/project'",
                              f"c['titleURL'] = {title_url!r}")
    assert cfg != DEFAULT_CFG
    client = make_master(cfg).app().test_client()
    for path in ("/", "/waterfall", "/grid", "/about", "/builders"):
        html = client.get(path).get_data(as_text=True)
        assert "Test Project" in html, path  # the title is still shown, as text
        for href in HREF.findall(html):
            scheme = re.sub(r"[\x00-\x20]", "", href).split(":", 1)[0].lower()
            assert scheme not in ("javascript", "data", "vbscript"), (path, href)


def test_title_url_of_the_web_is_linked(client):
    for path in ("/", "/waterfall", "/grid"):
        html = client.get(path).get_data(as_text=True)
        assert '<a href="http://example.org/project">Test Project</a>' in html, path


# -- JSONP -------------------------------------------------------------------------------------

def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_jsonp_is_refused_on_a_private_site(make_master):
    m = make_master(authz_cfg(f"Authz(auth={USERS}, view='auth')"))
    client = m.app().test_client()
    alice = basic("alice", "wonder-land")
    plain = client.get("/json/project", headers=alice)
    assert plain.status_code == 200 and plain.get_json()["title"] == "Test Project"
    for query in ("callback=steal", "callback=a.b&as_text=1", "callback=not%20valid"):
        resp = client.get(f"/json/project?{query}", headers=alice)
        assert resp.status_code == 400, query
        assert resp.mimetype != "application/javascript"
        body = resp.get_data(as_text=True)
        assert "JSONP" in body and "restricted" in body
        assert "Test Project" not in body and "steal(" not in body
    # anonymous: the view check answers first, as for any private document
    assert client.get("/json/project?callback=steal").status_code == 401


def test_jsonp_still_served_on_a_public_site(client):
    resp = client.get("/json/project?callback=show")
    assert resp.status_code == 200
    assert resp.mimetype == "application/javascript"
    assert resp.get_data(as_text=True).startswith("show({")


# -- change-hook answers ---------------------------------------------------------------------------

def test_every_change_hook_answer_is_one_text_line(master, client):
    answers = {
        "stored": client.post("/change_hook/base", data={"author": "a <a@example.org>",
                                                         "comments": "x"}),
        "bad request": client.post("/change_hook/base", data={"comments": "no author"}),
        "get": client.get("/change_hook/base"),
        "put": client.put("/change_hook/base", data={"author": "a"}),
        "delete": client.delete("/change_hook/base"),
        "options": client.options("/change_hook/base"),
        "disabled": client.post("/change_hook/github", data={}),
        "nested": client.post("/change_hook/base", data=b"[" * 20000,
                              content_type="application/json"),
    }
    for what, resp in answers.items():
        text = resp.get_data(as_text=True)
        assert resp.mimetype == "text/plain", what
        assert text.endswith("\n") and text.count("\n") == 1 and len(text) < 400, (what, text)
        assert resp.headers["X-Content-Type-Options"] == "nosniff", what
    assert answers["stored"].status_code == 202
    assert answers["stored"].get_data(as_text=True) == "stored 1 change: 1\n"
    assert [answers[k].status_code for k in ("bad request", "get", "put", "delete",
                                             "options", "disabled", "nested")] == [
        400, 405, 405, 405, 405, 404, 400]
    assert client.get("/changes/1").status_code == 200


def test_a_failing_store_is_a_text_500_and_logged(master, app, caplog):
    """The database failing in the middle of a request (here: a table gone): the answer is
    still one text line, and the failure is logged with its traceback."""
    with master.db.write() as conn:
        conn.exec_driver_sql("ALTER TABLE events RENAME TO events_gone")
    resp = app.test_client().post("/change_hook/base", data={"author": "a", "comments": "x"})
    assert resp.status_code == 500
    assert resp.mimetype == "text/plain"
    assert resp.get_data(as_text=True) == "Error processing changes.\n"
    assert "change hook base failed" in caplog.text and "Traceback" in caplog.text
