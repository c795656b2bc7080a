"""Authz in master.cfg: the 0.8 names and module paths, config errors naming the line,
httpLoginLink/httpLoginUrl, 0.8's deprecated WebStatus(allowForce=…, auth=…)."""

from __future__ import annotations

import pytest

from bbweb.mastercfg.errors import ConfigErrors
from tests.auth.conftest import USERS, authz_cfg, csrf_from, login, with_probe

OLD_IMPORTS = """
from bbweb.mastercfg.webstatus import WebStatus
from bbweb.status.web.authz import Authz
from bbweb.status.web.auth import BasicAuth, HTPasswdAuth, HTPasswdAprAuth, UsersAuth
"""


def test_0_8_module_paths(make_app) -> None:
    _m, app = make_app(f"Authz(auth={USERS}, forceBuild='auth', pingBuilder=True)",
                       prelude=OLD_IMPORTS)
    assert app.test_client().get("/probe/pingBuilder/advertised").data == b"yes"


def test_unknown_action_names_the_line(make_master) -> None:
    with pytest.raises(ConfigErrors) as err:
        make_master(authz_cfg("Authz(forceBuild=True,\n    stopBuilds=True)"))
    text = str(err.value)
    assert "master.cfg:" in text and "unknown authorization action(s) stopBuilds" in text
    line = int(text.split("master.cfg:")[1].split(":")[0])
    cfg_lines = (err.value.errors[0].split(":")[0])
    assert cfg_lines.endswith("master.cfg")
    # the line is the one with Authz(
    from pathlib import Path

    source = Path(cfg_lines).read_text().splitlines()
    assert "Authz(" in source[line - 1]


@pytest.mark.parametrize("bad", ["forceBuild='yes'", "forceBuild='Auth'", "view=[1]",
                                 "httpLoginUrl=3", "auth='bob'",
                                 "httpLoginUrl='a', httpLoginLink='b'"])
def test_bad_values_are_config_errors(make_master, bad: str) -> None:
    with pytest.raises(ConfigErrors) as err:
        make_master(authz_cfg(f"Authz({bad})"))
    assert "master.cfg:" in str(err.value) and "Authz" in str(err.value)


@pytest.mark.parametrize("kw", ["httpLoginUrl", "httpLoginLink"])
def test_http_login_link_alias(make_app, kw: str) -> None:
    _m, app = make_app(f"Authz(useHttpHeader=True, {kw}='https://bb.example/login', "
                       "forceBuild='auth')")
    page = app.test_client().get("/about").get_data(as_text=True)
    assert '<a href="https://bb.example/login" class="login">Login</a>' in page
    assert 'name="passwd"' not in page


def test_authz_with_allowforce_is_an_error(make_master) -> None:
    cfg = authz_cfg("Authz()").replace("authz=Authz()", "authz=Authz(), allowForce=True")
    with pytest.raises(ConfigErrors) as err:
        make_master(cfg)
    assert "master.cfg:" in str(err.value) and "allowForce" in str(err.value)


def test_deprecated_allowforce_true_allows_everything(make_master) -> None:
    cfg = authz_cfg("None").replace("authz=None", "allowForce=True")
    m = make_master(cfg)
    app = with_probe(m.app())
    c = app.test_client()
    for action in ("forceBuild", "cleanShutdown", "showUsersPage"):
        assert c.get(f"/probe/{action}/advertised").data == b"yes"
    assert c.get("/users").status_code == 200
    app.extensions["bbweb"].db.dispose()


def test_deprecated_allowforce_with_auth_needs_login(make_master) -> None:
    cfg = authz_cfg("None").replace("authz=None", f"allowForce=True, auth={USERS}")
    m = make_master(cfg)
    app = with_probe(m.app())
    c = app.test_client()
    r = c.post("/probe/forceBuild", data={"csrf_token": csrf_from(c, "/login")})
    assert "login?next=" in r.headers["Location"]
    login(c, "alice", "wonder-land")
    assert c.post("/probe/forceBuild", data={"csrf_token": csrf_from(c)}).status_code == 200
    app.extensions["bbweb"].db.dispose()


def test_deprecated_auth_alone_is_ignored(make_master, caplog) -> None:
    cfg = authz_cfg("None").replace("authz=None", f"auth={USERS}")
    m = make_master(cfg)
    assert m.config.web.authz.auth is None
    assert any("auth= without allowForce" in r.getMessage() for r in caplog.records)


def test_from_bbweb_config_import_star_has_the_names() -> None:
    import bbweb.config as c

    for name in ("Authz", "BasicAuth", "HTPasswdAuth", "HTPasswdAprAuth", "UsersAuth"):
        assert name in c.__all__


def test_basic_auth_needs_pairs(make_master) -> None:
    with pytest.raises(ConfigErrors) as err:
        make_master(authz_cfg("Authz(auth=BasicAuth([]))"))
    assert "BasicAuth" in str(err.value) and "master.cfg:" in str(err.value)


@pytest.mark.parametrize("port,ok", [("8010", False), ("'tcp:8010:interface=0.0.0.0'", False),
                                     ("'tcp:8010:interface=127.0.0.1'", True)])
def test_header_mode_without_auth_must_not_listen_publicly(make_master, port, ok) -> None:
    """Without auth= the user name in the Authorization header is believed as it comes:
    only a front end on the same host may reach bbweb then."""
    cfg = authz_cfg("Authz(useHttpHeader=True, forceBuild='auth')").replace(
        "http_port='tcp:8010:interface=127.0.0.1'", f"http_port={port}")
    assert f"http_port={port}" in cfg
    if ok:
        make_master(cfg)
        return
    with pytest.raises(ConfigErrors) as err:
        make_master(cfg)
    assert "master.cfg:" in str(err.value)
    assert "interface=127.0.0.1" in str(err.value) and "auth=" in str(err.value)
