"""``bbweb user`` manages the users table; UsersAuth logs in against it; the users pages
(/users, /users/N, Buildbot's documented /users/table and /users/table/N) behind showUsersPage."""

from __future__ import annotations

import hashlib
import io

import pytest
import sqlalchemy as sa

from bbweb.cli import main
from bbweb.db.schema import users
from tests.auth.conftest import USERS, login

SITE = "Authz(auth=UsersAuth(), showUsersPage='auth', forceBuild='auth')"


def bbweb_user(master, *args: str) -> int:  # type: ignore[no-untyped-def]
    return main(["user", args[0], "--basedir", str(master.basedir), *args[1:]])


def test_cli_add_list_update_remove(make_app, capsys, monkeypatch) -> None:
    m, app = make_app(SITE)
    assert bbweb_user(m, "add", "bob@example.org", "--username", "bob", "--password",
                      "first-pw", "--attr", "git=Bob <bob@example.org>",
                      "--attr", "full_name=Bob Builder") == 0
    assert "added user 1" in capsys.readouterr().out
    assert bbweb_user(m, "add", "bob@example.org") == 1
    assert "already exists" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("second-pw\n"))
    assert bbweb_user(m, "update", "bob", "--password-stdin", "--attr", "svn=bob",
                      "--attr", "git=") == 0
    assert bbweb_user(m, "list") == 0
    listing = capsys.readouterr().out
    assert "1\tbob@example.org\tbob\tfull_name=Bob Builder svn=bob" in listing
    assert "pw" not in listing and "$" not in listing
    with m.db.read() as conn:
        stored = conn.execute(sa.select(users.c.bb_password)).scalar()
    assert stored.startswith("$bcrypt-sha256$") and "second-pw" not in stored

    c = app.test_client()
    assert login(c, "bob", "first-pw").headers["Location"] == "./authfail"
    assert login(c, "bob", "second-pw").headers["Location"] == "./"
    assert "Bob Builder" in c.get("/about").get_data(as_text=True)

    assert bbweb_user(m, "remove", "bob@example.org") == 0
    assert login(app.test_client(), "bob", "second-pw").headers["Location"] == "./authfail"
    assert bbweb_user(m, "remove", "bob@example.org") == 1
    assert "no user" in capsys.readouterr().err


def test_cli_rejects_bad_attributes(make_app, capsys) -> None:
    m, _app = make_app(SITE)
    assert bbweb_user(m, "add", "x", "--attr", "novalue") == 1
    assert bbweb_user(m, "add", "x", "--attr", "bb_password=oops") == 1
    assert "cannot be an attribute" in capsys.readouterr().err


def test_unknown_user_and_user_without_password(make_app) -> None:
    m, app = make_app(SITE)
    assert bbweb_user(m, "add", "nopw") == 0
    c = app.test_client()
    assert login(c, "nopw", "anything").headers["Location"] == "./authfail"
    assert login(c, "ghost", "anything").headers["Location"] == "./authfail"


def test_0_8_password_hash_still_works_and_is_upgraded(make_app) -> None:
    m, app = make_app(SITE)
    salt = "0123456789abcdef"
    legacy = salt + hashlib.sha1(("old-secret" + salt).encode()).hexdigest()
    with m.db.write() as conn:
        conn.execute(users.insert().values(identifier="old", bb_username="old",
                                           bb_password=legacy))
    assert login(app.test_client(), "old", "wrong").headers["Location"] == "./authfail"
    assert login(app.test_client(), "old", "old-secret").headers["Location"] == "./"
    with m.db.read() as conn:
        stored = conn.execute(sa.select(users.c.bb_password)).scalar()
    assert stored.startswith("$bcrypt-sha256$")
    assert login(app.test_client(), "old", "old-secret").headers["Location"] == "./"


def add_users(m) -> None:  # type: ignore[no-untyped-def]
    assert bbweb_user(m, "add", "alice <alice@x>", "--username", "alice", "--password",
                      "pw-alice", "--attr", "git=Alice <alice@x>") == 0
    assert bbweb_user(m, "add", "<script>x</script>", "--attr", "svn=<i>s</i>") == 0


@pytest.mark.parametrize("table", ["/users", "/users/table"])
def test_users_pages(make_app, table: str) -> None:
    m, app = make_app(SITE)
    add_users(m)
    c = app.test_client()
    r = c.get(table, headers={"Accept": "text/html"})
    assert r.status_code == 303 and "login?next=" in r.headers["Location"]
    assert "Users</a>" in c.get("/about").get_data(as_text=True)  # somebody may log in
    login(c, "alice", "pw-alice")
    page = c.get(table).get_data(as_text=True)
    assert "<title>Users</title>" in page
    assert "<th>Uid</th><th>Identifier</th>" in page
    prefix = "../" if table == "/users/table" else "./"
    assert f'<b><a href="{prefix}users/1">1</a></b>' in page
    assert "alice &lt;alice@x&gt;" in page and "&lt;script&gt;" in page
    assert "<script>x" not in page
    for one in ("/users/2", "/users/table/2"):
        page = c.get(one).get_data(as_text=True)
        assert "<title>Buildbot User: 2</title>" in page
        assert "User: &lt;script&gt;x&lt;/script&gt;" in page
        assert "<td>svn</td><td>&lt;i&gt;s&lt;/i&gt;</td>" in page
    page = c.get("/users/1").get_data(as_text=True)
    assert "<td>bb_username</td><td>alice</td>" in page
    assert "bb_password" not in page and "bcrypt" not in page and "pw-alice" not in page
    assert c.get("/users/99").status_code == 404
    assert c.get("/users/abc").status_code == 404
    assert c.get("/users?after=x").status_code == 400


def test_users_pages_follow_show_users_page(make_app) -> None:
    m, app = make_app(f"Authz(auth={USERS}, showUsersPage=False)")
    add_users(m)
    c = app.test_client()
    login(c, "alice", "wonder-land")
    assert "Users</a>" not in c.get("/about").get_data(as_text=True)
    for path in ("/users", "/users/1", "/users/table/1"):  # 0.8 showed /users/N anyway
        r = c.get(path)
        assert r.status_code == 303 and r.headers["Location"].endswith("authzfail"), path
    _m2, public = make_app(f"Authz(auth={USERS}, showUsersPage=True)", name="public")
    assert public.test_client().get("/users/1").status_code == 200
