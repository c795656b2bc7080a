"""The authentication back end chosen in plugins.toml's [auth] (entry-point group
``bbweb.auth``), for sites whose master.cfg Authz(...) has no auth=."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from bbweb.cli import main
from tests.auth.conftest import authz_cfg, login

HTPASSWD = shutil.which("htpasswd")


def site(make_master, toml: str, authz: str = "Authz(forceBuild='auth')"):  # type: ignore
    m = make_master(authz_cfg(authz))
    (m.basedir / "plugins.toml").write_text(toml)
    return m


@pytest.mark.skipif(HTPASSWD is None, reason="htpasswd (apache2-utils) missing")
def test_htpasswd_file_relative_to_the_basedir(make_master) -> None:
    m = site(make_master, '[auth]\nhtpasswd = { file = "web.htpasswd" }\n')
    subprocess.run([HTPASSWD, "-b", "-c", "-B", "-C", "5", str(m.basedir / "web.htpasswd"),
                    "alice", "wonder-land"], check=True, capture_output=True)
    client = m.app().test_client()
    assert login(client, "alice", "nope").headers["Location"] == "./authfail"
    assert login(client, "alice", "wonder-land").headers["Location"] == "./"
    assert "alice" in client.get("/about").get_data(as_text=True)


def test_basic_users_from_the_toml(make_master) -> None:
    m = site(make_master, '[auth]\nbasic = { userpass = [["bob", "builder-pw"]] }\n')
    client = m.app().test_client()
    assert login(client, "bob", "builder-pw").headers["Location"] == "./"


@pytest.mark.parametrize("toml,authz,message", [
    ('[auth]\nbasic = { userpass = [["a", "b"]] }\nusers = true\n', None,
     "only one authentication back end"),
    ('[auth]\nusers = true\n', "Authz(auth=BasicAuth([('a', 'b')]), forceBuild='auth')",
     "already sets the authentication back end"),
    ('[auth]\nkerberos = true\n', None, "no such authentication back end is installed"),
    ('[auth]\nhtpasswd = { file = "missing.htpasswd" }\n', None, "no such file"),
    ('[auth]\nbasic = { colour = "red" }\n', None, "TypeError"),
])
def test_checkconfig_names_a_bad_auth_plugin(make_master, capsys, toml, authz,
                                             message) -> None:
    m = site(make_master, toml, authz or "Authz(forceBuild='auth')")
    assert main(["checkconfig", str(m.basedir)]) == 1
    err = capsys.readouterr().err
    assert "auth." in err and message in err
    # the site still runs, nobody can log in through the broken entry
    client = m.app().test_client()
    assert client.get("/about").status_code == 200
