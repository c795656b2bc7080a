"""Plugins are found through entry points; plugins.toml enables and disables them."""

from __future__ import annotations

import tomllib
from pathlib import Path

from bbweb.plugins.registry import GROUPS, discover
from tests.conftest import DEFAULT_CFG

REPO = Path(__file__).resolve().parents[2]


def test_reference_plugins_toml_names_installed_plugins():
    data = tomllib.loads((REPO / "plugins.toml").read_text())
    assert set(data) <= set(GROUPS)
    for section, entries in data.items():
        found = discover(section)
        for name in entries:
            assert name in found.plugins, f"{section}.{name} is not an installed entry point"


def test_plugins_toml_can_disable_a_dialect(make_master):
    m = make_master(DEFAULT_CFG)
    (m.basedir / "plugins.toml").write_text("[change_hooks]\nbase = false\n")
    client = m.app().test_client()
    assert client.post("/change_hook/base", data={"author": "a"}).status_code == 404


def test_plugins_toml_can_enable_a_dialect(make_master):
    m = make_master(DEFAULT_CFG.replace("change_hook_dialects={'base': True}", ""))
    (m.basedir / "plugins.toml").write_text("[change_hooks]\nbase = {}\n")
    client = m.app().test_client()
    assert client.post("/change_hook/base", data={"author": "a"}).status_code == 202


def test_builtin_auth_back_ends_register_like_third_party_ones():
    from bbweb.auth import BasicAuth, HTPasswdAprAuth, HTPasswdAuth, UsersAuth

    found = discover("auth")
    assert found.plugins["basic"] is BasicAuth and found.plugins["users"] is UsersAuth
    assert found.plugins["htpasswd"] is HTPasswdAuth
    assert found.plugins["htpasswdapr"] is HTPasswdAprAuth
