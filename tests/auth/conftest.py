"""Helpers for the authorization tests: masters with an ``Authz``, logging in through
the login form, and a probe blueprint that behaves like an action view (so every action
can be exercised through HTTP without depending on the action pages themselves)."""

from __future__ import annotations

import re
import textwrap
from typing import Any

import pytest
from flask import Blueprint, Flask, Response

from tests.conftest import DEFAULT_CFG

# A master.cfg whose WebStatus gets AUTHZ (the text of an expression) and PRELUDE lines.
AUTHZ_CFG = DEFAULT_CFG.replace(
    "c['status'] = [WebStatus(http_port=8010, change_hook_dialects={'base': True})]",
    "c['schedulers'].append(ForceScheduler(name='force', builderNames=['runtests']))\n"
    "PRELUDE\nc['status'] = [WebStatus(http_port='tcp:8010:interface=127.0.0.1',"
    " change_hook_dialects={'base': True},"
    " authz=AUTHZ)]")

USERS = "BasicAuth([('alice', 'wonder-land'), ('bob', 'builder-pw')])"


def authz_cfg(authz: str, prelude: str = "") -> str:
    return AUTHZ_CFG.replace("PRELUDE", textwrap.dedent(prelude)).replace("AUTHZ", authz)


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(client: Any, path: str = "/about") -> str:
    """The CSRF token the page's forms carry for this client's session."""
    page = client.get(path).get_data(as_text=True)
    m = CSRF.search(page)
    assert m, f"no CSRF field on {path}"
    return m.group(1)


def login(client: Any, user: str, password: str, next_page: str = "") -> Any:
    """Log in through the login form; returns the response of the POST."""
    token = csrf_from(client, "/login")
    return client.post("/login", data={"username": user, "passwd": password,
                                       "csrf_token": token, "next": next_page})


probe = Blueprint("probe", __name__)


@probe.route("/probe/<action>", methods=["GET", "POST"])
def probe_action(action: str) -> Response:
    """An action view following the contract: guard, load objects, decide."""
    from bbweb.web.authz import action_allowed, action_guard, deny

    refused = action_guard(action)
    if refused is not None:
        return refused
    if not action_allowed(action, f"object-of-{action}"):
        return deny(action)
    return Response(f"did {action}", status=200)


@probe.route("/probe/<action>/advertised")
def probe_advertised(action: str) -> Response:
    from bbweb.web.authz import advertise_action

    return Response("yes" if advertise_action(action) else "no")


def with_probe(app: Flask) -> Flask:
    app.register_blueprint(probe)
    return app


@pytest.fixture
def make_app(make_master):  # type: ignore[no-untyped-def]
    """``make_app(authz_text, prelude='')`` -> (master, app with the probe mounted)."""
    apps: list[Flask] = []

    def factory(authz: str, prelude: str = "", name: str = "master"):  # type: ignore
        m = make_master(authz_cfg(authz, prelude), name=name)
        app = with_probe(m.app())
        apps.append(app)
        return m, app

    yield factory
    for app in apps:
        app.extensions["bbweb"].db.dispose()
