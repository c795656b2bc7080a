"""A Buildbot 0.8-style master.cfg loads after changing `buildbot.` to `bbweb.`."""

from __future__ import annotations

from bbweb.config import load_master_config
from bbweb.mastercfg.schedulers import AnyBranchScheduler, ForceScheduler, SingleBranchScheduler
from bbweb.status.html import WebStatus

OLD_STYLE = """\
# -*- python -*-
from buildbot.buildslave import BuildSlave
from buildbot.changes.filter import ChangeFilter
from buildbot.schedulers.basic import SingleBranchScheduler, AnyBranchScheduler
from buildbot.schedulers.forcesched import ForceScheduler
from buildbot.schedulers.timed import Nightly
from buildbot.process.factory import BuildFactory
from buildbot.steps.source.git import Git
from buildbot.steps.shell import ShellCommand, Compile, Test
from buildbot.process.properties import Interpolate, WithProperties
from buildbot.config import BuilderConfig
from buildbot.status import html
from buildbot.status.builder import SUCCESS, Results

c = BuildmasterConfig = {}
c['slaves'] = [BuildSlave("example-slave", "pass")]
c['slavePortnum'] = 9989
c['schedulers'] = []
c['schedulers'].append(SingleBranchScheduler(
    name="all", change_filter=ChangeFilter(branch='master'), treeStableTimer=None,
    builderNames=["runtests"]))
c['schedulers'].append(AnyBranchScheduler(name="any", builderNames=["runtests"],
                                          treeStableTimer=30))
c['schedulers'].append(ForceScheduler(name="force", builderNames=["runtests"]))
c['schedulers'].append(Nightly(name="nightly", builderNames=["runtests"], hour=3,
                               minute=30, branch="master"))
factory = BuildFactory()
factory.addStep(Git(repourl='git://github.com/buildbot/pyflakes.git', mode='incremental'))
factory.addStep(ShellCommand(command=["trial", "pyflakes"]))
factory.addStep(Compile(command=Interpolate("make -j%(prop:jobs:-2)s")))
factory.addStep(Test(command=WithProperties("make test BRANCH=%(branch)s")))
c['builders'] = [BuilderConfig(name="runtests", slavenames=["example-slave"],
                               factory=factory)]
c['status'] = []
c['status'].append(html.WebStatus(http_port=8010))
c['title'] = "Pyflakes"
c['titleURL'] = "https://launchpad.net/pyflakes"
c['buildbotURL'] = "http://localhost:8010/"
c['db'] = {'db_url': "sqlite:///state.sqlite"}
"""


def test_buildbot_08_config_loads_after_prefix_change(tmp_path):
    (tmp_path / "master.cfg").write_text(OLD_STYLE.replace("buildbot.", "bbweb."))
    cfg = load_master_config(tmp_path)
    assert cfg.title == "Pyflakes"
    assert isinstance(cfg.schedulers["all"], SingleBranchScheduler)
    assert isinstance(cfg.schedulers["any"], AnyBranchScheduler)
    assert isinstance(cfg.schedulers["force"], ForceScheduler)
    assert [s.step_name() for s in cfg.builders["runtests"].factory.steps] == [
        "git", "shell", "compile", "test"]
    assert isinstance(cfg.web, WebStatus) and cfg.web.listen.port == 8010
    assert cfg.db_url == "sqlite:///" + str((tmp_path / "state.sqlite").resolve())
    assert any("slavePortnum" in w for w in cfg.warnings)
    assert cfg.schedulers["all"].wants_change({"branch": "master"})
    assert not cfg.schedulers["all"].wants_change({"branch": "dev"})
