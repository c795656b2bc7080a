"""Logging in and out, the failure pages, the login box on every page, sessions that
survive a restart and work in every process, cookie flags, same-site redirects."""

from __future__ import annotations

import re

import pytest

from tests.auth.conftest import USERS, csrf_from, login

SITE = f"Authz(auth={USERS}, forceBuild='auth')"


def session_cookie(resp) -> str:  # type: ignore[no-untyped-def]
    cookies = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("bbweb_session=")]
    assert cookies, "no session cookie set"
    return cookies[-1]


@pytest.mark.parametrize("path", ["/", "/builders", "/builders/runtests", "/buildslaves",
                                  "/changes", "/about", "/one_line_per_build"])
def test_login_box_on_every_page(make_app, path: str) -> None:
    _m, app = make_app(SITE)
    page = app.test_client().get(path).get_data(as_text=True)
    box = re.search(r'<form class="login" method="post" action="([^"]+)">(.*?)</form>',
                    page, re.S)
    assert box, path
    assert box.group(1).endswith("login")
    assert 'name="username"' in box.group(2) and 'name="passwd"' in box.group(2)
    assert 'name="csrf_token"' in box.group(2)


def test_no_login_box_without_auth(master) -> None:
    app = master.app()
    page = app.test_client().get("/builders").get_data(as_text=True)
    assert 'name="passwd"' not in page and "Logout" not in page
    app.extensions["bbweb"].db.dispose()


def test_login_logout_round_trip(make_app) -> None:
    _m, app = make_app(SITE)
    c = app.test_client()
    r = login(c, "alice", "wonder-land", next_page="builders/runtests?numbuilds=3")
    assert r.status_code == 303
    assert r.headers["Location"] == "./builders/runtests?numbuilds=3"
    page = c.get("/builders").get_data(as_text=True)
    assert '<span class="user">alice</span>' in page and "Logout" in page
    assert 'name="passwd"' not in page
    # logout is a POST with the token; the cookie is cleared in the browser
    r = c.post("/logout", data={"csrf_token": csrf_from(c), "next": "builders"})
    assert r.status_code == 303 and r.headers["Location"] == "./builders"
    assert "Expires=Thu, 01 Jan 1970" in session_cookie(r) or "Max-Age=0" in session_cookie(r)
    page = c.get("/builders").get_data(as_text=True)
    assert '<span class="user">' not in page and 'name="passwd"' in page


def test_logout_needs_the_token(make_app) -> None:
    _m, app = make_app(SITE)
    c = app.test_client()
    login(c, "alice", "wonder-land")
    assert c.post("/logout", data={}).status_code == 403
    assert '<span class="user">alice</span>' in c.get("/about").get_data(as_text=True)
    assert b"Log out" in c.get("/logout").data  # GET only shows the button


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("mallory", "wonder-land"),
                                           ("alice", ""), ("", "")])
def test_wrong_credentials_go_to_authfail(make_app, user: str, password: str) -> None:
    _m, app = make_app(SITE)
    c = app.test_client()
    r = login(c, user, password)
    assert r.status_code == 303 and r.headers["Location"] == "./authfail"
    page = c.get("/authfail")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "<title>Authentication Failed</title>" in text
    assert "The username or password you entered were not correct." in text
    assert '<span class="user">' not in c.get("/about").get_data(as_text=True)


def test_authzfail_page(make_app) -> None:
    _m, app = make_app(SITE)
    text = app.test_client().get("/authzfail").get_data(as_text=True)
    assert "<title>Authorization Failed</title>" in text
    assert "You are not allowed to perform this action." in text


def test_login_post_without_token_is_refused(make_app) -> None:
    _m, app = make_app(SITE)
    c = app.test_client()
    r = c.post("/login", data={"username": "alice", "passwd": "wonder-land"})
    assert r.status_code == 403
    assert '<span class="user">' not in c.get("/about").get_data(as_text=True)


def test_login_renews_the_session(make_app) -> None:
    """No session fixation: the anonymous session's CSRF token does not survive login."""
    _m, app = make_app(SITE)
    c = app.test_client()
    before = csrf_from(c, "/login")
    login(c, "alice", "wonder-land")
    assert csrf_from(c) != before


def test_logging_in_again_switches_user(make_app) -> None:
    """0.8 sent a logged-in user who logs in again to authfail; here it just works."""
    _m, app = make_app(SITE)
    c = app.test_client()
    login(c, "alice", "wonder-land")
    token = csrf_from(c)
    r = c.post("/login", data={"username": "bob", "passwd": "builder-pw",
                               "csrf_token": token})
    assert r.status_code == 303 and r.headers["Location"] == "./"
    assert '<span class="user">bob</span>' in c.get("/about").get_data(as_text=True)


@pytest.mark.parametrize("target", ["http://evil.example/", "//evil.example/x",
                                    "/\\evil.example", "\\\\evil.example",
                                    "https:evil.example", "javascript:alert(1)",
                                    "/builders", "builders\r\nSet-Cookie: x=y"])
def test_login_redirects_only_within_the_site(make_app, target: str) -> None:
    _m, app = make_app(SITE)
    c = app.test_client()
    r = login(c, "alice", "wonder-land", next_page=target)
    assert r.status_code == 303 and r.headers["Location"] == "./"
    r = c.post("/logout", data={"csrf_token": csrf_from(c), "next": target})
    assert r.headers["Location"] == "./"


def test_cookie_flags(make_app) -> None:
    _m, app = make_app(SITE)
    c = app.test_client()
    cookie = session_cookie(login(c, "alice", "wonder-land"))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http
    secure = app.test_client()
    token = csrf_from_https(secure)
    r = secure.post("/login", base_url="https://localhost",
                    data={"username": "alice", "passwd": "wonder-land",
                          "csrf_token": token})
    assert r.status_code == 303
    assert "Secure" in session_cookie(r)


def csrf_from_https(client) -> str:  # type: ignore[no-untyped-def]
    page = client.get("/login", base_url="https://localhost").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_session_survives_restart_and_other_processes(make_app, tmp_path) -> None:
    """The secret is kept in the basedir: a second app (another gunicorn process, or the
    same site after a restart) accepts the first one's session."""
    m, app = make_app(SITE)
    c = app.test_client()
    login(c, "alice", "wonder-land")
    cookie = c.get_cookie("bbweb_session")
    assert cookie is not None
    secret = m.basedir / "web-secret.key"
    assert secret.exists() and (secret.stat().st_mode & 0o777) == 0o600
    other = m.app()
    try:
        c2 = other.test_client()
        c2.set_cookie("bbweb_session", cookie.value)
        assert '<span class="user">alice</span>' in c2.get("/about").get_data(as_text=True)
    finally:
        other.extensions["bbweb"].db.dispose()
    # a forged cookie is worth nothing
    c3 = app.test_client()
    c3.set_cookie("bbweb_session", cookie.value[:-2] + "xx")
    assert '<span class="user">' not in c3.get("/about").get_data(as_text=True)


def test_session_expires_after_a_day(make_app, monkeypatch) -> None:
    import time as time_mod

    _m, app = make_app(SITE)
    c = app.test_client()
    login(c, "alice", "wonder-land")
    real = time_mod.time
    monkeypatch.setattr(time_mod, "time", lambda: real() + 25 * 3600)
    assert '<span class="user">' not in c.get("/about").get_data(as_text=True)


def test_user_text_is_escaped(make_app) -> None:
    _m, app = make_app("Authz(auth=BasicAuth([('<b>x</b>', 'pw')]), forceBuild='auth')")
    c = app.test_client()
    login(c, "<b>x</b>", "pw")
    page = c.get("/about").get_data(as_text=True)
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


def test_logout_ends_the_session_on_the_server(make_app) -> None:
    """Sessions are signed cookies; a copy kept elsewhere (stolen, another computer) must
    stop working when the user logs out, in every process, and a new login works."""
    m, app = make_app(SITE)
    c = app.test_client()
    login(c, "alice", "wonder-land")
    stolen = c.get_cookie("bbweb_session").value
    thief = app.test_client()
    thief.set_cookie("bbweb_session", stolen)
    assert '<span class="user">alice</span>' in thief.get("/about").get_data(as_text=True)
    bob = app.test_client()
    login(bob, "bob", "builder-pw")
    c.post("/logout", data={"csrf_token": csrf_from(c)})
    assert '<span class="user">' not in thief.get("/about").get_data(as_text=True)
    other = m.app()  # another gunicorn process
    try:
        elsewhere = other.test_client()
        elsewhere.set_cookie("bbweb_session", stolen)
        assert '<span class="user">' not in elsewhere.get("/about").get_data(as_text=True)
    finally:
        other.extensions["bbweb"].db.dispose()
    # another user's session goes on; alice can log in again at once
    assert '<span class="user">bob</span>' in bob.get("/about").get_data(as_text=True)
    login(c, "alice", "wonder-land")
    assert '<span class="user">alice</span>' in c.get("/about").get_data(as_text=True)
