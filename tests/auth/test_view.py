"""``view`` protects every page of a private site — HTML, JSON, feeds, badges, logs,
public_html files — except the login pages, the health check, the worker API and the
change hooks; a per-badge token opens one builder's badge."""

from __future__ import annotations

import base64

import pytest

from tests.auth.conftest import USERS, login
from tests.support.history import claim, force, run

BUILD = "/builders/runtests/builds/0"
HTML_PAGES = ["/", "/builders", "/builders/runtests", BUILD, BUILD + "/steps/hello",
              BUILD + "/steps/hello/logs/stdio", "/buildslaves", "/buildslaves/slave1",
              "/changes", "/about", "/one_line_per_build", "/json/help",
              "/buildstatus?builder=runtests&number=0", "/secret.html"]
MACHINE = ["/json", "/json/builders", "/json/builders/runtests/builds/0", "/rss", "/atom",
           "/png?builder=runtests", "/badge.svg?builder=runtests",
           BUILD + "/steps/hello/logs/stdio/text"]
OPEN = ["/login", "/authfail", "/authzfail", "/health", "/default.css", "/favicon.ico",
        "/robots.txt", "/logout"]


@pytest.fixture
def private(make_app):  # type: ignore[no-untyped-def]
    """A site only logged-in users see, with one finished build."""
    prelude = "def only_alice(user, *objs):\n    assert objs == ()\n    return user == 'alice'\n"
    m, app = make_app(f"Authz(auth={USERS}, view=only_alice)", prelude=prelude)
    force(m, "runtests")
    claimed = claim(m, "slave1", 1000.0)
    run(m, claimed.buildid, {}, 1001.0)
    (m.basedir / "public_html" / "secret.html").parent.mkdir(exist_ok=True)
    (m.basedir / "public_html" / "secret.html").write_text("<p>private</p>")
    return m, app


def test_anonymous_sees_only_the_login_pages(private) -> None:
    _m, app = private
    c = app.test_client()
    for path in HTML_PAGES:
        r = c.get(path, headers={"Accept": "text/html"})
        assert r.status_code == 303, path
        assert "login?next=" in r.headers["Location"], path
        assert b"<p>private</p>" not in r.data and b"Redirecting" in r.data, path
    for path in MACHINE:
        r = c.get(path)
        assert r.status_code == 401, path
        assert b"runtests" not in r.data
    for path in OPEN:
        assert c.get(path).status_code in (200, 404) and c.get(path).status_code != 303, path
    # the login form comes back to the page asked for
    r = c.get("/builders/runtests?numbuilds=2", headers={"Accept": "text/html"})
    assert r.headers["Location"] == "../login?next=builders/runtests%3Fnumbuilds%3D2"


def test_worker_api_and_change_hook_keep_their_own_auth(private) -> None:
    _m, app = private
    c = app.test_client()
    r = c.post("/change_hook/base", data={"comments": "x", "author": "a"})
    assert r.status_code != 303 and "login" not in r.headers.get("Location", "")
    r = c.get("/api/worker/poll")
    assert r.status_code in (401, 403, 404, 405)


def test_logged_in_user_sees_everything(private) -> None:
    _m, app = private
    c = app.test_client()
    login(c, "alice", "wonder-land")
    for path in HTML_PAGES + MACHINE:
        assert c.get(path).status_code == 200, path


def test_a_function_can_refuse_view(private) -> None:
    _m, app = private
    c = app.test_client()
    login(c, "bob", "builder-pw")
    r = c.get("/builders", headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["Location"] == "./authzfail"
    assert c.get("/json/builders").status_code == 403
    assert c.get("/authzfail").status_code == 200


def test_scripts_read_with_basic_credentials(private) -> None:
    _m, app = private
    c = app.test_client()
    good = base64.b64encode(b"alice:wonder-land").decode()
    bad = base64.b64encode(b"alice:nope").decode()
    r = c.get("/json/builders", headers={"Authorization": f"Basic {good}"})
    assert r.status_code == 200 and b"runtests" in r.data
    r = c.get("/json/builders", headers={"Authorization": f"Basic {bad}"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")


def test_view_false_shows_nothing_even_to_users(make_app) -> None:
    _m, app = make_app(f"Authz(auth={USERS}, view=False)")
    c = app.test_client()
    login(c, "alice", "wonder-land")
    r = c.get("/builders", headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["Location"] == "./authzfail"
    assert c.get("/rss").status_code == 403
    assert c.get("/login").status_code == 200


def test_view_auth_and_true(make_app) -> None:
    _m, app = make_app(f"Authz(auth={USERS}, view='auth')")
    c = app.test_client()
    assert c.get("/json").status_code == 401
    login(c, "bob", "builder-pw")
    assert c.get("/json").status_code == 200
    _m2, public = make_app(f"Authz(auth={USERS}, view=True)", name="public")
    assert public.test_client().get("/json").status_code == 200


def test_badge_token_opens_one_badge(private, capsys) -> None:
    from bbweb.cli import main

    m, app = private
    assert main(["badge-token", str(m.basedir), "runtests"]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["badge-token", str(m.basedir), "docs"]) == 0
    other = capsys.readouterr().out.strip()
    c = app.test_client()
    r = c.get(f"/png?builder=runtests&token={token}")
    assert r.status_code == 200 and r.content_type == "image/png"
    assert c.get(f"/badge.svg?builder=runtests&token={token}").status_code == 200
    assert c.get(f"/png?builder=runtests&token={other}").status_code == 401
    assert c.get(f"/png?builder=docs&token={token}").status_code == 401
    assert c.get(f"/json/builders?builder=runtests&token={token}").status_code == 401


def test_login_page_of_a_private_site_shows_no_navigation(private) -> None:
    _m, app = private
    c = app.test_client()
    page = c.get("/login").get_data(as_text=True)
    assert 'href="./builders"' not in page and 'name="passwd"' in page
    login(c, "alice", "wonder-land")
    assert 'href="./builders"' in c.get("/login").get_data(as_text=True)


def test_a_private_site_is_not_kept_by_shared_caches(private, capsys) -> None:
    """A caching front end must not hand what a user or a script fetched to the next
    anonymous visitor: every page of a private site is ``Cache-Control: private`` (a
    ``public`` response to a request with ``Authorization`` may be shared). A badge
    opened by its token stays public (a README's CDN), as do the login page's files."""
    from bbweb.cli import main

    m, app = private
    creds = {"Authorization": "Basic " + base64.b64encode(b"alice:wonder-land").decode()}
    c = app.test_client()
    for path in ["/secret.html", "/png?builder=runtests", "/badge.svg?builder=runtests",
                 BUILD + "/steps/hello/logs/stdio/text", "/json/builders", "/builders"]:
        r = c.get(path, headers=creds)
        assert r.status_code == 200, path
        cc = r.headers.get("Cache-Control", "")
        assert "private" in cc and "public" not in cc, (path, cc)
    assert "public" in c.get("/default.css").headers["Cache-Control"]
    assert main(["badge-token", str(m.basedir), "runtests"]) == 0
    token = capsys.readouterr().out.strip()
    r = c.get(f"/png?builder=runtests&token={token}")
    assert r.status_code == 200 and "public" in r.headers["Cache-Control"]
