"""master.cfg loading as a user meets it: `bbweb checkconfig` output and exit codes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bbweb.cli import main
from bbweb.config import ConfigErrors, load_master_config

HEADER = """\
from bbweb.config import *
c = BuildmasterConfig = {}
c['slaves'] = [BuildSlave('s1', 'pw')]
f = BuildFactory([ShellCommand(command='true')])
"""


def write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "master.cfg").write_text(HEADER + textwrap.dedent(body))
    return tmp_path


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["checkconfig", str(tmp_path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def line_of(tmp_path: Path, needle: str) -> int:
    lines = (tmp_path / "master.cfg").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_good_config(tmp_path, capsys):
    write(tmp_path, """
        c['builders'] = [BuilderConfig(name='b', slavenames=['s1'], factory=f)]
        c['schedulers'] = [SingleBranchScheduler(name='s', branch=None, builderNames=['b'])]
        c['status'] = [WebStatus(http_port='tcp:8010:interface=127.0.0.1')]
    """)
    code, out = check(tmp_path, capsys)
    assert code == 0, out
    assert "Config file is good!" in out
    cfg = load_master_config(tmp_path)
    assert cfg.web.listen.host == "127.0.0.1" and cfg.web.listen.port == 8010
    assert cfg.db_url == "sqlite:///" + str((tmp_path / "state.sqlite").resolve())


def test_syntax_error_names_file_and_line(tmp_path, capsys):
    write(tmp_path, "c['title'] = 'x'\nc['builders'] = [\n")
    code, out = check(tmp_path, capsys)
    assert code == 1
    assert f"{tmp_path.resolve() / 'master.cfg'}:" in out
    assert "syntax error" in out


def test_runtime_exception_names_line(tmp_path, capsys):
    write(tmp_path, "x = 1\ny = undefined_name + 1\n")
    code, out = check(tmp_path, capsys)
    assert code == 1
    assert f"master.cfg:{line_of(tmp_path, 'undefined_name')}:" in out
    assert "NameError" in out


def test_unknown_slave_is_reported_at_builder_line(tmp_path, capsys):
    write(tmp_path, """
        c['builders'] = [
            BuilderConfig(name='b', slavenames=['nope'], factory=f),
        ]
    """)
    code, out = check(tmp_path, capsys)
    assert code == 1
    assert f"master.cfg:{line_of(tmp_path, 'nope')}: builder 'b' uses unknown slave 'nope'" in out


def test_duplicates_unknown_keys_and_bad_types_all_reported(tmp_path, capsys):
    write(tmp_path, """
        c['builders'] = [BuilderConfig(name='b', slavenames=['s1'], factory=f),
                         BuilderConfig(name='b', slavenames=['s1'], factory=f, builddir='x')]
        c['schedulers'] = [SingleBranchScheduler(name='s', branch=None,
                                                 builderNames=['missing'])]
        c['colour'] = 'blue'
        c['title'] = 42
    """)
    code, out = check(tmp_path, capsys)
    assert code == 1
    assert "duplicate BuilderConfig name 'b'" in out
    assert "unknown configuration key c['colour']" in out
    assert "c['title'] must be a string" in out
    assert "scheduler 's' names unknown builder 'missing'" in out


def test_bad_constructor_argument_points_at_its_line(tmp_path, capsys):
    write(tmp_path, """
        c['builders'] = [BuilderConfig(name='b', slavenames=['s1'], factory=f,
                                       colour='red')]
    """)
    code, out = check(tmp_path, capsys)
    assert code == 1
    assert "unknown argument(s) colour" in out
    assert "master.cfg:" in out


def test_bad_http_port(tmp_path):
    write(tmp_path, "c['status'] = [WebStatus(http_port='udp:80')]\n")
    with pytest.raises(ConfigErrors) as exc:
        load_master_config(tmp_path)
    assert "http_port 'udp:80' is not understood" in str(exc.value)


def test_two_webstatus_on_one_port(tmp_path):
    write(tmp_path, "c['status'] = [WebStatus(http_port=8010), WebStatus(http_port='tcp:8010')]\n")
    with pytest.raises(ConfigErrors, match="same port"):
        load_master_config(tmp_path)


def test_missing_file(tmp_path, capsys):
    code, out = check(tmp_path, capsys)
    assert code == 1
    assert "does not exist" in out


def test_seed_spellings_accepted(tmp_path):
    write(tmp_path, """
        from bbweb.status import html
        c['projectName'] = 'Old Name'
        c['projectURL'] = 'http://old.example/'
        c['status'] = [html.Waterfall(http_port=8011, rotateLength=1000)]
    """)
    cfg = load_master_config(tmp_path)
    assert cfg.title == "Old Name" and cfg.titleURL == "http://old.example/"
    assert cfg.web.logRotateLength == 1000


def test_ignored_buildbot_keys_warn(tmp_path, capsys):
    write(tmp_path, "c['slavePortnum'] = 9989\n")
    code, out = check(tmp_path, capsys)
    assert code == 0
    assert "c['slavePortnum'] has no effect" in out


def test_enabled_hook_that_is_not_installed_fails_checkconfig(tmp_path, capsys):
    write(tmp_path, "c['status'] = [WebStatus(change_hook_dialects={'nosuchhook': True})]\n")
    code, out = check(tmp_path, capsys)
    assert code == 1
    assert (f"master.cfg:{line_of(tmp_path, 'nosuchhook')}: change_hooks.nosuchhook: no such "
            "change hook dialect is installed (installed: base, ") in out


def test_bad_plugins_toml(tmp_path, capsys):
    write(tmp_path, "")
    (tmp_path / "plugins.toml").write_text("[change_hooks]\nbase = 3\n")
    code, out = check(tmp_path, capsys)
    assert code == 1
    assert "plugins.toml" in out and "base must be true, false or a table" in out


def test_create_master_sample_is_valid(tmp_path, capsys):
    assert main(["create-master", str(tmp_path / "m")]) == 0
    code, out = check(tmp_path / "m", capsys)
    assert code == 0, out
    cfg = load_master_config(tmp_path / "m")
    assert "local-worker" in cfg.slaves
    assert (tmp_path / "m" / "master.cfg").stat().st_mode & 0o077 == 0
    assert main(["create-master", str(tmp_path / "m")]) == 1  # does not clobber


def test_validation_patterns_are_checked(tmp_path, capsys):
    write(tmp_path, """
        c['builders'] = [BuilderConfig(name='b', slavenames=['s1'], factory=f)]
        c['validation'] = {'branch': '([unclosed', 'colour': '.*'}
    """)
    code, out = check(tmp_path, capsys)
    assert code == 1
    assert "c['validation']['branch'] is not a regular expression" in out
    assert "c['validation'] has an unknown key 'colour'" in out
    write(tmp_path, """
        import re
        c['builders'] = [BuilderConfig(name='b', slavenames=['s1'], factory=f)]
        c['validation'] = {'revision': re.compile(r'^[0-9a-f]{40}$')}
    """)
    cfg = load_master_config(str(tmp_path))
    assert cfg.validation["revision"].pattern == "^[0-9a-f]{40}$"
    assert cfg.validation["branch"].search("release/1.0")  # the others keep their defaults
    assert not any("validation" in w for w in cfg.warnings)


def test_buildbot_options_bbweb_does_not_act_on_yet_warn(tmp_path, capsys):
    write(tmp_path, """
        c['slaves'].append(BuildSlave('s2', 'pw', notify_on_missing='ops@example.org'))
        c['builders'] = [BuilderConfig(name='b', slavenames=['s1'], factory=f,
                                       env={'CC': 'gcc'}, locks=['lock'])]
        c['schedulers'] = [SingleBranchScheduler(name='s', branch=None, builderNames=['b'],
                                                 onlyImportant=True,
                                                 codebases={'': {}})]
        c['mergeRequests'] = False
    """)
    code, out = check(tmp_path, capsys)
    assert code == 0, out
    cfg = tmp_path.resolve() / "master.cfg"
    builder, sched = line_of(tmp_path, "BuilderConfig"), line_of(tmp_path, "SingleBranch")
    for expected in (
            f"warning: {cfg}:{line_of(tmp_path, 's2')}: BuildSlave 's2': notify_on_missing= "
            "sends no mail",
            f"warning: {cfg}:{builder}: builder 'b': env= has no effect in bbweb yet",
            f"warning: {cfg}:{builder}: builder 'b': locks= has no effect in bbweb yet",
            f"warning: {cfg}:{sched}: scheduler 's': onlyImportant= has no effect",
            f"warning: {cfg}:{sched}: scheduler 's': codebases= has no effect",
            f"warning: {cfg}: c['mergeRequests'] has no effect in bbweb and is ignored"):
        assert expected in out
    assert "Config file is good!" in out


def test_a_status_target_nothing_runs_is_a_warning(tmp_path, capsys):
    write(tmp_path, """
        class Receiver:  # a 0.8-style status receiver: no consumer_name/handle_event
            pass

        class Consumer:
            consumer_name = 'mine'

            def handle_event(self, event):
                pass

        c['status'] = [WebStatus(http_port=8010), Receiver(), Consumer()]
    """)
    code, out = check(tmp_path, capsys)
    assert code == 0, out
    assert (f"warning: {tmp_path.resolve() / 'master.cfg'}: c['status'] contains Receiver, "
            "which is neither a WebStatus nor an event consumer") in out
    assert "Consumer," not in out
