"""GerritStatusPush's arguments: bad values reported by checkconfig with the file and line
of master.cfg (or the plugins.toml entry), relative key files found next to master.cfg,
and the local ssh command line that cannot be steered by a value."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from bbweb.cli import main
from bbweb.mastercfg.errors import ConfigErrors
from bbweb.plugins.notifiers.gerrit_ssh import Review, SshSettings, review_command, ssh_argv
from bbweb.status.status_gerrit import GerritStatusPush
from tests.notifiers.conftest import MAIL_CFG

GERRIT_CFG = MAIL_CFG + "from bbweb.status.status_gerrit import GerritStatusPush\n"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"server": None}, "server=None must be the host name or address"),
    ({"server": "-oProxyCommand=touch /tmp/x"}, "must be the host name or address"),
    ({"server": "gerrit.example.org extra"}, "must be the host name or address"),
    ({"username": ""}, "username='' must be the Gerrit user name"),
    ({"username": "-oProxyCommand=x"}, "must be the Gerrit user name"),
    ({"username": "bot\nx"}, "must be the Gerrit user name"),
    ({"port": "29418"}, "port='29418' must be a port number"),
    ({"port": 0}, "must be a port number"),
    ({"reviewCB": "not a function"}, "reviewCB='not a function' must be a function, or "
                                     "'package.module:function'"),
    ({"summaryCB": 42}, "summaryCB must be a function (or None)"),
    ({"startCB": "nomodule_xyz:cb"}, "startCB='nomodule_xyz:cb' cannot be imported"),
    ({"identity_file": "/nonexistent/id_ed25519"}, "identity_file '/nonexistent/id_ed25519' "
                                                    "does not exist"),
    ({"known_hosts_file": 7}, "known_hosts_file must be a file name"),
    ({"timeout": 0}, "timeout must be a positive number of seconds"),
    ({"verbose": True}, "unknown argument(s) verbose"),
])
def test_argument_errors(kwargs, message):
    args = {"server": "gerrit.example.org", "username": "buildbot", **kwargs}
    with pytest.raises(ConfigErrors) as info:
        GerritStatusPush(**args)
    assert message in str(info.value)


def write(tmp_path, extra: str) -> str:  # type: ignore[no-untyped-def]
    cfg = GERRIT_CFG.replace("DB_URL", repr("sqlite:///" + str(tmp_path / "s.sqlite")))
    cfg += textwrap.dedent(extra)
    (tmp_path / "master.cfg").write_text(cfg)
    return cfg


def test_checkconfig_names_file_and_line(tmp_path, capsys):
    cfg = write(tmp_path, """
        c['status'].append(GerritStatusPush('gerrit.example.org', 'buildbot',
                                            port=-1))
    """)
    assert main(["checkconfig", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate(cfg.splitlines(), 1) if "GerritStatusPush(" in text)
    assert re.search(rf"master\.cfg:{line}: GerritStatusPush: port=-1 must be a port number",
                     err), err


def test_key_files_are_found_next_to_master_cfg(tmp_path, capsys):
    (tmp_path / "gerrit_id").write_text("(a key)")
    write(tmp_path, """
        c['status'].append(GerritStatusPush('gerrit.example.org', 'buildbot',
                                            identity_file='gerrit_id'))
    """)
    assert main(["checkconfig", str(tmp_path)]) == 0, capsys.readouterr().err
    write(tmp_path, """
        c['status'].append(GerritStatusPush('gerrit.example.org', 'buildbot',
                                            identity_file='no_such_id'))
    """)
    assert main(["checkconfig", str(tmp_path)]) == 1
    assert f"identity_file '{tmp_path / 'no_such_id'}' does not exist" \
        in capsys.readouterr().err


def test_checkconfig_reports_plugins_toml_entries(tmp_path, capsys):
    write(tmp_path, "")
    (tmp_path / "plugins.toml").write_text(
        '[notifiers]\ngerrit = { server = "gerrit.example.org", username = "buildbot", '
        'port = 70000 }\n')
    assert main(["checkconfig", str(tmp_path)]) == 1
    assert "notifiers.gerrit: GerritStatusPush: port=70000 must be a port number" \
        in capsys.readouterr().err
    (tmp_path / "plugins.toml").write_text(
        '[notifiers]\ngerrit = { server = "gerrit.example.org", username = "buildbot", '
        'reviewCB = "bbweb.status.status_gerrit:defaultReviewCB" }\n')
    assert main(["checkconfig", str(tmp_path)]) == 0, capsys.readouterr().err


def test_the_local_command_line():
    """ssh's options come first and end with ``--``; the remote words follow the
    destination, values quoted."""
    settings = SshSettings(server="gerrit.example.org", username="bot", port=29418,
                           identity_file="/keys/id", known_hosts_file="/keys/known_hosts",
                           timeout=30)
    remote = review_command(Review("a b", "0123abcd", "it's", 1, 0), (2, 5))
    assert ssh_argv(settings, remote) == [
        "ssh", "-p", "29418", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
        "-i", "/keys/id", "-o", "IdentitiesOnly=yes",
        "-o", "UserKnownHostsFile=/keys/known_hosts", "-o", "StrictHostKeyChecking=yes",
        "--", "bot@gerrit.example.org",
        "gerrit", "review", "--project", "'a b'", "--message", "'it'\"'\"'s'",
        "--verified", "1", "0123abcd"]


def test_the_example_in_configuration_md_passes_checkconfig(tmp_path, capsys):
    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    section = docs.split("\n## GerritStatusPush\n", 1)[1].split("\n## ", 1)[0]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "gerrit_id_ed25519").write_text("(a key)")
    (tmp_path / "gerrit_known_hosts").write_text("")
    write(tmp_path, example)
    assert main(["checkconfig", str(tmp_path)]) == 0, capsys.readouterr().err
