"""Every way credentials reach bbweb — the login form, HTTP Basic on a GET, a script's
``username``/``passwd`` fields on an action, the front end's header in header mode — is
logged when it fails (password guessing must show in the log whichever door is tried)
and is bounded in length (a hash's cost grows with the password)."""

from __future__ import annotations

import base64
import logging

import pytest

from tests.auth.conftest import USERS, login

SITE = f"Authz(auth={USERS}, forceBuild='auth')"

COUNTING = """
class Counting(BasicAuth):
    calls = []
    def authenticate(self, user, passwd):
        self.calls.append(user)
        return super().authenticate(user, passwd)
"""


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith("failed login for 'alice'")]


def test_failures_are_logged_on_every_channel(make_app, caplog) -> None:
    _m, app = make_app(SITE)
    c = app.test_client()
    with caplog.at_level(logging.WARNING, logger="bbweb.auth"):
        page = c.get("/about", headers=basic("alice", "guess1")).get_data(as_text=True)
    assert '<span class="user">' not in page
    assert len(failures(caplog)) == 1 and "HTTP Basic" in failures(caplog)[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bbweb.auth"):
        r = c.post("/probe/forceBuild", data={"username": "alice", "passwd": "guess2"})
    assert r.headers["Location"] == "../authfail"
    assert len(failures(caplog)) == 1 and "passwd" in failures(caplog)[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bbweb.auth"):
        assert login(c, "alice", "guess3").headers["Location"] == "./authfail"
    assert len(failures(caplog)) == 1 and "login form" in failures(caplog)[0]


def test_a_forged_front_end_header_is_logged(make_app, caplog) -> None:
    _m, app = make_app(f"Authz(useHttpHeader=True, auth={USERS}, forceBuild='auth')")
    with caplog.at_level(logging.WARNING, logger="bbweb.auth"):
        page = app.test_client().get("/about", headers=basic("alice", "forged"))
    assert '<span class="user">' not in page.get_data(as_text=True)
    assert len(failures(caplog)) == 1 and "Authorization header" in failures(caplog)[0]


def test_overlong_credentials_are_not_tried(make_app) -> None:
    _m, app = make_app("Authz(auth=Counting([('alice', 'wonder-land')]), "
                       "forceBuild='auth')", prelude=COUNTING)
    calls = app.extensions["bbweb_authz"].auth.calls
    long = "x" * 3000
    c = app.test_client()
    user_span = '<span class="user">'
    assert user_span not in c.get("/about", headers=basic("alice", long)).get_data(as_text=True)
    assert c.post("/probe/forceBuild", data={"username": "alice", "passwd": long}
                  ).headers["Location"] == "../authfail"
    assert user_span not in c.get("/about", headers=basic(long, "pw")).get_data(as_text=True)
    assert calls == []
    assert user_span in c.get("/about", headers=basic("alice", "wonder-land")
                              ).get_data(as_text=True)
    assert calls == ["alice"]


def test_login_fields_count_only_through_the_login_view(make_app) -> None:
    """A login POST refused for its missing CSRF token must not show the user as logged
    in (the fields were once taken as a script's credentials on that page)."""
    _m, app = make_app(SITE)
    c = app.test_client()
    r = c.post("/login", data={"username": "alice", "passwd": "wonder-land"})
    assert r.status_code == 403
    assert '<span class="user">' not in r.get_data(as_text=True)
