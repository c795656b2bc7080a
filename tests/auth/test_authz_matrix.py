"""Every Authz value for every action, allowed and denied, for anonymous and logged-in
users, through an action view that follows the contract of bbweb.web.authz."""

from __future__ import annotations

import pytest

from bbweb.mastercfg.authz import ACTIONS
from tests.auth.conftest import USERS, csrf_from, login

NON_VIEW = [a for a in ACTIONS if a != "view"]

RULE = """
def rule(username, *objects):
    # allowed for alice only, and only when given the objects the view loaded
    return username == 'alice' and all(o.startswith('object-of-') for o in objects) \\
        and len(objects) == 1
"""


def explicit(value: str) -> str:
    """Authz with every action given by its own keyword."""
    return f"Authz(auth={USERS}, " + ", ".join(f"{a}={value}" for a in NON_VIEW) + ")"


CONFIGS = {
    "False": explicit("False"),
    "True": explicit("True"),
    "auth": explicit("'auth'"),
    "callable": explicit("rule"),
}


def post(client, action: str, token: str):  # type: ignore[no-untyped-def]
    return client.post(f"/probe/{action}", data={"csrf_token": token},
                       headers={"Referer": "http://bb.example.org/builders/runtests"})


@pytest.mark.parametrize("value", list(CONFIGS))
def test_every_action_every_value(make_app, value: str) -> None:
    _m, app = make_app(CONFIGS[value], prelude=RULE)
    anon, alice, bob = app.test_client(), app.test_client(), app.test_client()
    assert login(alice, "alice", "wonder-land").status_code == 303
    assert login(bob, "bob", "builder-pw").status_code == 303
    tokens = {c: csrf_from(c) for c in (anon, alice, bob)}
    for action in NON_VIEW:
        results = {}
        for who, c in (("anon", anon), ("alice", alice), ("bob", bob)):
            r = post(c, action, tokens[c])
            results[who] = (r.status_code, r.headers.get("Location", ""),
                            r.get_data(as_text=True))
        advertised = anon.get(f"/probe/{action}/advertised").get_data(as_text=True)
        if value == "False":
            assert advertised == "no"
            for who in ("anon", "alice", "bob"):
                assert results[who][:2] == (303, "../authzfail"), (action, who)
        elif value == "True":
            assert advertised == "yes"
            for who in ("anon", "alice", "bob"):
                assert results[who][0] == 200 and results[who][2] == f"did {action}"
        else:
            assert advertised == "yes"  # anyone may log in first; the POST decides
            code, where, _ = results["anon"]
            assert code == 303 and where.startswith("../login?next=builders/runtests"), action
            assert results["alice"][0] == 200, action
            if value == "auth":
                assert results["bob"][0] == 200, action
            else:
                assert results["bob"][:2] == (303, "../authzfail"), action


def test_default_action_and_view_default(make_app) -> None:
    """Unnamed actions follow default_action; view stays True on its own."""
    _m, app = make_app(f"Authz(auth={USERS}, default_action='auth', stopBuild=False)")
    c = app.test_client()
    assert c.get("/builders").status_code == 200  # view is True although default is auth
    assert c.get("/probe/stopBuild/advertised").data == b"no"
    assert c.get("/probe/forceBuild/advertised").data == b"yes"
    login(c, "alice", "wonder-land")
    token = csrf_from(c)
    assert post(c, "forceBuild", token).status_code == 200
    assert post(c, "stopBuild", token).headers["Location"] == "../authzfail"


def test_no_authz_is_read_only(master) -> None:
    """0.8's default: everything visible, every action refused and not advertised."""
    from tests.auth.conftest import with_probe

    app = with_probe(master.app())
    c = app.test_client()
    assert c.get("/builders").status_code == 200
    for action in NON_VIEW:
        assert c.get(f"/probe/{action}/advertised").data == b"no"
    assert "csrf_token" not in c.get("/about").get_data(as_text=True)  # no forms at all
    r = post(c, "forceBuild", "")
    assert r.status_code == 303 and r.headers["Location"] == "../authzfail"
    app.extensions["bbweb"].db.dispose()


def test_auth_action_without_any_login_is_never_allowed(make_app) -> None:
    """'auth' with no auth= and no front end: nobody can log in, so nothing is shown and
    the POST is refused."""
    _m, app = make_app("Authz(forceBuild='auth', pingBuilder=True)")
    c = app.test_client()
    assert c.get("/probe/forceBuild/advertised").data == b"no"
    assert c.get("/probe/pingBuilder/advertised").data == b"yes"
    r = c.post("/probe/forceBuild", data={})
    assert r.status_code == 303 and r.headers["Location"] == "../authzfail"


def test_post_without_csrf_token_is_refused(make_app) -> None:
    _m, app = make_app(f"Authz(auth={USERS}, forceBuild=True, stopBuild='auth')")
    c = app.test_client()
    login(c, "alice", "wonder-land")
    for action in ("forceBuild", "stopBuild"):
        r = c.post(f"/probe/{action}", data={})
        assert r.status_code == 403 and b"CSRF" in r.data
        r = c.post(f"/probe/{action}", data={"csrf_token": "forged"})
        assert r.status_code == 403
        assert c.post(f"/probe/{action}", headers={"X-CSRF-Token": csrf_from(c)}
                      ).status_code == 200
    # another session's token is no good either
    other = app.test_client()
    login(other, "bob", "builder-pw")
    assert c.post("/probe/stopBuild", data={"csrf_token": csrf_from(other)}
                  ).status_code == 403


def test_actions_need_post(make_app) -> None:
    _m, app = make_app(f"Authz(auth={USERS}, forceBuild=True)")
    r = app.test_client().get("/probe/forceBuild")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


def test_script_credentials_in_the_form(make_app) -> None:
    """0.8's script support: username/passwd fields authenticate one request (no
    session, no CSRF token needed since the request carries its own credentials)."""
    _m, app = make_app(f"Authz(auth={USERS}, forceBuild='auth')")
    c = app.test_client()
    r = c.post("/probe/forceBuild", data={"username": "bob", "passwd": "builder-pw"})
    assert r.status_code == 200
    r = c.post("/probe/forceBuild", data={"username": "bob", "passwd": "wrong"})
    assert r.status_code == 303 and r.headers["Location"] == "../authfail"
    # the script's login did not leave a session behind
    assert c.post("/probe/forceBuild", data={}).status_code == 403


def test_callable_that_raises_denies(make_app) -> None:
    prelude = "def broken(user, *objs):\n    raise RuntimeError('oops')\n"
    _m, app = make_app(f"Authz(auth={USERS}, forceBuild=broken)", prelude=prelude)
    c = app.test_client()
    login(c, "alice", "wonder-land")
    r = post(c, "forceBuild", csrf_from(c))
    assert r.status_code == 303 and r.headers["Location"] == "../authzfail"
