"""The status objects a 0.8-style notifier callback receives (``build.getResults()``,
``master_status.getURLForThing(build)``…), over builds made through the engine on SQLite
and PostgreSQL."""

from __future__ import annotations

import pytest

from bbweb.engine.changes import ChangeInput, add_change
from bbweb.mastercfg.properties import Interpolate, WithProperties
from bbweb.status import logstream
from bbweb.status import results as status_results
from bbweb.status.builder import Results as builder_Results
from bbweb.status.objects import LOG_TEXT_LIMIT, Change, MasterStatus
from bbweb.status.results import FAILURE, SUCCESS, Results
from tests.support.history import claim, force, run

CFG = """
from bbweb.config import *
c = BuildmasterConfig = {}
c['title'] = 'Objects'
c['buildbotURL'] = 'http://ci.example.org/'
c['db_url'] = DB_URL
c['slaves'] = [BuildSlave('slave1', 'pw')]
f = BuildFactory()
f.addStep(ShellCommand(command=['make'], name='compile', description=['compiling'],
                       descriptionDone=['compile']))
f.addStep(ShellCommand(command=['make', 'test'], name='test run', description=['testing'],
                       descriptionDone=['tests']))
c['builders'] = [BuilderConfig(name='linux & co', slavenames=['slave1'], factory=f,
                               category='unix'),
                 BuilderConfig(name='win10', slavenames=['slave1'], factory=f),
                 BuilderConfig(name='win9', slavenames=['slave1'], factory=f)]
c['schedulers'] = [SingleBranchScheduler(name='all', branch='main',
                                         builderNames=['linux & co']),
                   ForceScheduler(name='force', builderNames=['linux & co', 'win9'])]
"""

T0 = 1_700_000_000.0
LOG = [("h", "$ make test\n"), ("o", "running\n"), ("e", "boom\n"), ("o", "done\n")]


@pytest.fixture
def history(make_master):  # type: ignore[no-untyped-def]
    """Build 0 of 'linux & co' from alice's change fails in 'test run'; build 1, forced by
    carol with a property, succeeds."""
    m = make_master(CFG)
    with m.db.write() as conn:
        add_change(conn, m.config, ChangeInput(
            author="alice <alice@example.org>", comments="fix the frobnicator",
            files=["src/b.c", "src/a.c"], revision="0123456789abcdef", branch="main",
            repository="https://git.example.org/frob.git", project="frob",
            properties={"ticket": 42}), now=T0)
    b0 = claim(m, "slave1", T0 + 1)
    t = run(m, b0.buildid, {"test run": 2}, T0 + 2, log=LOG)
    force(m, "linux & co", reason="try again", owner="carol <carol@example.org>",
          properties={"flavour": "vanilla"})
    b1 = claim(m, "slave1", t + 5)
    run(m, b1.buildid, {}, t + 6, props={"got_revision": "feedface"})
    return m, MasterStatus(m.db, m.config)


def test_results_constants_under_both_import_paths():
    assert (SUCCESS, FAILURE) == (0, 2)
    assert Results is builder_Results
    assert Results[status_results.EXCEPTION] == "exception"
    assert Results[status_results.CANCELLED] == "cancelled"


def test_master_status(history):
    _m, ms = history
    assert ms.getTitle() == "Objects"
    assert ms.getBuildbotURL() == "http://ci.example.org/"
    assert ms.getBuilderNames() == ["linux & co", "win9", "win10"]  # natural order
    assert ms.getBuilderNames(categories=["unix"]) == ["linux & co"]
    assert ms.getSlaveNames() == ["slave1"]
    assert ms.asDict()["title"] == "Objects"
    with pytest.raises(KeyError):
        ms.getBuilder("nope")
    assert ms.getURLForThing(ms) == "http://ci.example.org/"
    assert ms.getURLForThing(object()) is None


def test_failed_build_as_a_callback_sees_it(history):
    _m, ms = history
    builder = ms.getBuilder("linux & co")
    assert builder.getName() == "linux & co" and builder.getCategory() == "unix"
    build = builder.getBuild(0)
    assert build.getBuilder().getName() == "linux & co"
    assert build.getNumber() == 0 and build.isFinished()
    assert build.getResults() == FAILURE and build.results == FAILURE
    assert build.getText() == ["failed", "tests"]
    assert build.getSlavename() == "slave1"
    assert build.getPreviousBuild() is None
    start, end = build.getTimes()
    assert start == T0 + 1 and end is not None and end > start
    assert build.getResponsibleUsers() == ["alice <alice@example.org>"]
    assert build.getInterestedUsers() == []

    [ss] = build.getSourceStamps()
    assert (ss.branch, ss.revision, ss.repository, ss.project, ss.codebase) == (
        "main", "0123456789abcdef", "https://git.example.org/frob.git", "frob", "")
    assert ss.patch is None and ss.patch_info is None
    [change] = build.getChanges()
    assert isinstance(change, Change) and change is not None
    assert change.who == "alice <alice@example.org>"
    assert change.files == ["src/a.c", "src/b.c"]  # sorted, as 0.8 kept them
    assert change.properties.getProperty("ticket") == 42
    assert build.getRevisions() == "0123456"
    d = change.asDict()
    assert d["rev"] == d["revision"] == "0123456789abcdef"
    assert d["files"] == [{"name": "src/a.c"}, {"name": "src/b.c"}]
    assert d["properties"] == [["ticket", 42, "Change"]]
    text = change.asText()
    assert text.startswith("Files:\n src/a.c\n src/b.c\nOn: https://git.example.org/frob.git"
                           "\nFor: frob\nAt: ")
    assert "\nChanged By: alice <alice@example.org>\nComments: fix the frobnicator\n" in text
    assert text.endswith("Properties: \n  ticket: 42\n\n")
    assert change.getText() == ["alice &lt;alice@example.org&gt;"]

    steps = build.getSteps()
    assert [s.getName() for s in steps] == ["compile", "test run"]
    assert steps[0].getResults() == (SUCCESS, [])
    assert steps[1].getResults() == (FAILURE, ["tests"])
    assert steps[1].isStarted() and steps[1].isFinished() and not steps[1].isSkipped()
    assert steps[1].getBuild() is build

    logs = build.getLogs()
    assert [(lg.getStep().getName(), lg.getName()) for lg in logs] == [
        ("compile", "stdio"), ("test run", "stdio")]
    log = logs[1]
    assert log.isFinished() and log.hasContents()
    assert log.getText() == "running\nboom\ndone\n"  # stdout and stderr, no header
    assert log.getTextWithHeaders() == "$ make test\nrunning\nboom\ndone\n"
    assert log.readlines() == ["running\n", "boom\n", "done\n"]
    assert log.getChunks() == [(2, "$ make test\n"), (0, "running\n"), (1, "boom\n"),
                               (0, "done\n")]
    assert log.getChunks(channels=[1], onlyText=True) == ["boom\n"]

    base = "http://ci.example.org/builders/linux%20%26%20co/builds/0"
    assert ms.getURLForThing(builder) == "http://ci.example.org/builders/linux%20%26%20co"
    assert ms.getURLForThing(build) == base
    assert ms.getURLForBuild("linux & co", 0) == base
    assert ms.getURLForThing(steps[1]) == base + "/steps/test%20run"
    assert ms.getURLForThing(log) == base + "/steps/test%20run/logs/stdio"
    assert ms.getURLForThing(change) == "http://ci.example.org/changes/1"
    assert ms.getChange(1).who == "alice <alice@example.org>"
    assert ms.getChange(99) is None


def test_forced_build_properties_owner_and_previous(history):
    _m, ms = history
    build = ms.getBuilder("linux & co").getBuild(-1)
    assert build.getNumber() == 1 and build.getResults() == SUCCESS
    assert build.getText() == ["build", "successful"]
    assert build.getInterestedUsers() == ["carol <carol@example.org>"]
    assert build.getResponsibleUsers() == []
    assert build.getProperty("flavour") == "vanilla"
    assert build.hasProperty("flavour") and not build.hasProperty("nope")
    assert build.getProperty("nope", "dflt") == "dflt"
    props = build.getProperties()
    assert props["flavour"] == "vanilla" and "flavour" in props
    assert ("flavour", "vanilla", "Force Build Form") in props.asList()
    assert props.asList() == sorted(props.asList())
    assert build.render(Interpolate("%(prop:flavour)s for %(prop:owner)s")) == \
        "vanilla for carol <carol@example.org>"
    assert build.render(WithProperties("%(flavour)s")) == "vanilla"
    assert build.getAllGotRevisions() == {"": "feedface"}

    prev = build.getPreviousBuild()
    assert prev is not None and prev.getNumber() == 0 and prev.getResults() == FAILURE
    last = ms.getBuilder("linux & co").getLastFinishedBuild()
    assert last is not None and last.getNumber() == 1
    assert ms.getBuilder("win9").getLastFinishedBuild() is None
    assert ms.getBuilder("win9").getBuild(0) is None
    state, current = ms.getBuilder("linux & co").getState()
    assert (state, current) == ("offline", [])


def test_log_tail_is_bounded_and_exact(make_master):
    """A long log is read from its end, batch by batch: the tail is exact at every limit,
    and says whether anything came before it."""
    m = make_master(CFG)
    force(m, "win9", reason="big log")
    claimed = claim(m, "slave1", T0)
    lines = [("o" if i % 3 else "e", f"line {i:04d}\n") for i in range(300)]
    run(m, claimed.buildid, {}, T0 + 1, log=[("h", "header\n"), *lines])
    log = MasterStatus(m.db, m.config).getBuilder("win9").getBuild(0).getLogs()[0]
    full = "".join(text for _s, text in lines)
    assert log.getText() == full and len(full) < LOG_TEXT_LIMIT
    assert log.getTail(len(full)) == (full, False)
    assert log.getTail(len(full) - 1) == (full[1:], True)
    assert log.getTail(len(full) + 1) == (full, False)
    assert log.getTail(10) == (full[-10:], True)
    assert log.getTail(len(full), channels=(0, 1, 2)) == (full, True)  # the header is before
    assert log.getTail(len(full) + 7, channels=(0, 1, 2)) == ("header\n" + full, False)
    # read three chunks per transaction: the tail is stitched across batches
    for limit in (5, 25, 1001, len(full) - 1, len(full), len(full) + 1):
        assert logstream.tail_text(m.db, log.info.id, limit, batch=3) == (
            full[-limit:], limit < len(full))
