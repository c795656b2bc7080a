"""A master whose Authz allows the control actions (or not), for the action tests."""

from __future__ import annotations

import html
import re

import pytest

from tests.conftest import DEFAULT_CFG

# Everything allowed to anyone, a force scheduler for both builders.
OPEN_CFG = DEFAULT_CFG.replace(
    "c['status'] = [WebStatus(http_port=8010, change_hook_dialects={'base': True})]",
    """from bbweb.auth import Authz
from bbweb.schedulers.forcesched import *
c['schedulers'].append(ForceScheduler(
    name='force', builderNames=['runtests', 'docs'],
    properties=[IntParameter('jobs', label='Jobs:', default=2),
                ChoiceStringParameter('flavour', label='Flavour:', choices=['fast', 'slow']),
                BooleanParameter('clean', label='Clean build'),
                AnyPropertyParameter('property1')]))
c['schedulers'].append(ForceScheduler(name='docsonly', builderNames=['docs'],
                                      username=False, buttonName='Build the docs'))
c['status'] = [WebStatus(http_port=8010, authz=Authz(default_action=True),
                           change_hook_dialects={'base': True})]
""")
assert OPEN_CFG != DEFAULT_CFG

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(client, path: str = "/") -> str:  # type: ignore[no-untyped-def]
    """The session's CSRF token, as a page's form carries it."""
    page = client.get(path).get_data(as_text=True)
    found = CSRF.search(page)
    assert found, f"no CSRF field on {path}"
    return found.group(1)


def post(client, path: str, data: dict | None = None, page: str = "/"):  # type: ignore[no-untyped-def]
    """POST a form the way a browser does (with the page's CSRF token)."""
    form = dict(data or {})
    form.setdefault("csrf_token", csrf(client, page))
    return client.post(path, data=form)


def flashes(client, path: str) -> str:  # type: ignore[no-untyped-def]
    """The messages shown on ``path`` (the flashed ones appear once), unescaped."""
    page = client.get(path).get_data(as_text=True)
    return html.unescape(" ".join(re.findall(r'<li class="flash[^"]*"[^>]*>(.*?)</li>',
                                             page, re.S)))


@pytest.fixture
def open_master(make_master):  # type: ignore[no-untyped-def]
    return make_master(OPEN_CFG)


@pytest.fixture
def open_app(open_master):  # type: ignore[no-untyped-def]
    application = open_master.app()
    yield application
    application.extensions["bbweb"].db.dispose()


@pytest.fixture
def oclient(open_app):  # type: ignore[no-untyped-def]
    return open_app.test_client()
