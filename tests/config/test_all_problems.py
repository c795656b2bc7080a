"""One `bbweb checkconfig` run reports every problem of master.cfg, each at its line.

A bad argument does not stop the file: the object is made with a harmless stand-in for
that argument, the rest of the file runs, and the checks of how the parts fit together
(unknown builders, duplicate names) are added to the same report.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from bbweb.cli import main
from bbweb.config import ConfigErrors, ShellCommand, SingleBranchScheduler, load_master_config

MANY_MISTAKES = """\
from bbweb.config import *
c = BuildmasterConfig = {}
c['slaves'] = [BuildSlave('s1', 'pw', max_builds=0)]
f = BuildFactory()
f.addStep(ShellCommand(command=['make'], haltOnFailur=True))
f.addStep(ShellCommand(command=['make', 'check'], timeout='soon'))
f.addStep(Git(repourl='https://example.org/x.git', mode='shallow'))
f.addStep(ShellCommand)
c['builders'] = [
    BuilderConfig(name='b', slavenames=['s1'], factory=f, colour='red'),
    BuilderConfig(name='c', slavenames=['s2'], factory=f),
]
c['schedulers'] = [
    SingleBranchScheduler(name='s', branch=None, treeStableTimer="x", builderNames=['b']),
    Nightly(name='n', builderNames=['b'], hour=25),
    Periodic(name='p', builderNames=['nosuch'], periodicBuildTimer=-1),
    ForceScheduler(name='f', builderNames=['b'], reason='why'),
]
c['status'] = [WebStatus(http_port=8010, numbuilds=0, provide_feeds=['gopher'])]
"""

# (text of the line in MANY_MISTAKES, message reported for it)
EXPECTED = [
    ("max_builds=0", "BuildSlave 's1': max_builds must be a positive integer or None"),
    ("haltOnFailur", "ShellCommand: unknown argument(s) haltOnFailur"),
    ("timeout='soon'", "ShellCommand: timeout must be a positive number of seconds or None"),
    ("mode='shallow'", "Git: mode must be one of incremental, full, not 'shallow'"),
    ("f.addStep(ShellCommand)", "addStep() takes a step instance, e.g. ShellCommand(...), "
                                "not a class"),
    ("colour='red'", "BuilderConfig: unknown argument(s) colour"),
    ('treeStableTimer="x"', "scheduler 's': treeStableTimer must be a number of seconds "
                            "or None"),
    ("hour=25", "Nightly: hour must be '*' or integers in 0..23, got 25"),
    ("periodicBuildTimer=-1", "Periodic 'p': periodicBuildTimer must be a positive number "
                              "of seconds"),
    ("reason='why'", "ForceScheduler 'f': reason must be a parameter (e.g. StringParameter) "
                     "or False"),
    ("numbuilds=0", "WebStatus: numbuilds must be a positive integer"),
    ("numbuilds=0", "WebStatus: provide_feeds must be a list drawn from atom, json, rss"),
    ("slavenames=['s2']", "builder 'c' uses unknown slave 's2'"),
    ("periodicBuildTimer=-1", "scheduler 'p' names unknown builder 'nosuch'"),
]


def write(basedir: Path, text: str) -> Path:
    (basedir / "master.cfg").write_text(text)
    return (basedir / "master.cfg").resolve()


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_checkconfig_names_every_independent_mistake_with_its_line(tmp_path, capsys):
    cfg = write(tmp_path, MANY_MISTAKES)
    assert main(["checkconfig", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    reported = [line.strip() for line in captured.err.splitlines()[1:]]
    expected = [f"{cfg}:{line_of(MANY_MISTAKES, needle)}: {message}"
                for needle, message in EXPECTED]
    assert reported == expected
    assert "Config file is good!" not in captured.out


def test_bbweb_start_and_master_report_the_same_problems_and_run_nothing(tmp_path, capsys,
                                                                       caplog):
    cfg = write(tmp_path, MANY_MISTAKES)
    assert main(["start", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    for needle, message in EXPECTED:
        assert f"{cfg}:{line_of(MANY_MISTAKES, needle)}: {message}" in err
    with caplog.at_level(logging.ERROR, logger="bbweb.daemon"):
        assert main(["master", str(tmp_path)]) == 1
    assert f"{cfg}:{line_of(MANY_MISTAKES, 'haltOnFailur')}: ShellCommand: unknown " \
           "argument(s) haltOnFailur" in caplog.text
    assert not (tmp_path / "state.sqlite").exists()  # no database was created


def test_problems_found_before_a_fatal_error_are_kept(tmp_path, capsys):
    text = textwrap.dedent("""\
        from bbweb.config import *
        c = BuildmasterConfig = {}
        step = ShellCommand(command='make', haltOnFailur=True)
        c['title'] = undefined_name
        step = ShellCommand(command='make', flunkOnFailur=True)
    """)
    cfg = write(tmp_path, text)
    assert main(["checkconfig", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{cfg}:3: ShellCommand: unknown argument(s) haltOnFailur" in err
    assert f"{cfg}:4: error while executing the configuration: NameError" in err
    assert "flunkOnFailur" not in err  # the file stopped at line 4


def test_a_bad_name_is_reported_once_not_again_as_a_missing_builder(tmp_path, capsys):
    text = textwrap.dedent("""\
        from bbweb.config import *
        c = BuildmasterConfig = {}
        c['slaves'] = [BuildSlave('s1', 'pw')]
        c['builders'] = [BuilderConfig(name=42, slavenames=['s1'],
                                       factory=BuildFactory())]
        c['schedulers'] = [SingleBranchScheduler(name='s', branch=None, builderNames='b1 b2'
                                                 .split(' ') + [3])]
    """)
    cfg = write(tmp_path, text)
    assert main(["checkconfig", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()[1:]
    assert [line.strip() for line in err] == [
        f"{cfg}:4: BuilderConfig: name is required and must be a string",
        f"{cfg}:6: scheduler 's': builderNames must be a list of builder names",
    ]


def test_a_clean_file_still_loads(tmp_path):
    write(tmp_path, textwrap.dedent("""\
        from bbweb.config import *
        c = BuildmasterConfig = {}
        c['slaves'] = [BuildSlave('s1', 'pw')]
        f = BuildFactory([ShellCommand(command=['make'], haltOnFailure=True)])
        c['builders'] = [BuilderConfig(name='b', slavenames=['s1'], factory=f)]
        c['schedulers'] = [SingleBranchScheduler(name='s', branch=None, treeStableTimer=5,
                                                 builderNames=['b'])]
    """))
    cfg = load_master_config(tmp_path)
    assert cfg.schedulers["s"].treeStableTimer == 5
    assert cfg.builders["b"].factory.steps[0].haltOnFailure is True


def test_objects_built_outside_master_cfg_refuse_bad_arguments_at_once():
    """Python code and tests building configuration objects get the error immediately."""
    with pytest.raises(ConfigErrors, match="unknown argument\\(s\\) haltOnFailur"):
        ShellCommand(command="make", haltOnFailur=True)
    with pytest.raises(ConfigErrors, match="treeStableTimer must be a number"):
        SingleBranchScheduler(name="s", branch=None, treeStableTimer="x", builderNames=["b"])


ACCESS_AND_POLLER_MISTAKES = """\
from bbweb.config import *
from bbweb.changes.gitpoller import GitPoller
from bbweb.changes.svnpoller import SVNPoller
c = BuildmasterConfig = {}
c['slaves'] = [BuildSlave('s1', 'pw')]
f = BuildFactory()
f.addStep(ShellCommand(command=['make']))
c['builders'] = [BuilderConfig(name='b', slavenames=['s1'], factory=f)]
c['change_source'] = [
    GitPoller('https://example.org/x.git', branches=[], pollInterval=0),
    SVNPoller('svn://example.org/r', histmax=0, revlinktmpl='http://x/'),
]
users = BasicAuth('bob:secret')
gate = Authz(auth=users, forceBuild='sometimes', stopBiuld=True)
c['status'] = [WebStatus(http_port=8010, authz=gate),
               WebStatus(http_port=8011, authz=Authz(auth=HTPasswdAuth('no-such-htpasswd')))]
"""


def test_access_and_poller_mistakes_are_all_named_in_one_run(tmp_path, capsys):
    """Authentication, authorization and pollers report each bad argument and go on, like
    every other object of the file: one run lists them all."""
    cfg = write(tmp_path, ACCESS_AND_POLLER_MISTAKES)
    assert main(["checkconfig", str(tmp_path)]) == 1
    reported = [line.strip() for line in capsys.readouterr().err.splitlines()[1:]]
    text = ACCESS_AND_POLLER_MISTAKES
    assert reported == [f"{cfg}:{line_of(text, needle)}: {message}" for needle, message in [
        ("branches=[]", "GitPoller: pollInterval must be a positive number of seconds, "
                        "not 0"),
        ("branches=[]", "GitPoller: branches must be a non-empty list of branch names, "
                        "True (every branch) or a callable"),
        ("histmax=0", "SVNPoller: histmax must be a positive integer, not 0"),
        ("histmax=0", "SVNPoller: revlinktmpl needs a '%s' for the revision"),
        ("BasicAuth(", "BasicAuth: give a non-empty list of ('user', 'password') pairs of "
                       "strings"),
        ("stopBiuld", "Authz: unknown authorization action(s) stopBiuld; the actions are "
                      "view, gracefulShutdown, forceBuild, forceAllBuilds, pingBuilder, "
                      "stopBuild, stopAllBuilds, cancelPendingBuild, cancelAllPendingBuilds, "
                      "stopChange, cleanShutdown, showUsersPage, pauseSlave"),
        ("stopBiuld", "Authz: forceBuild='sometimes' is not understood: use False, True, "
                      "'auth' or a function (username, *objects) -> bool"),
        ("no-such-htpasswd", f"HTPasswdAuth: no such file: {tmp_path / 'no-such-htpasswd'}"),
    ]]
