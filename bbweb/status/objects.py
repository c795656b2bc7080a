"""The status objects a user's notifier callback receives, with Buildbot 0.8's methods.

A ``messageFormatter``, a mail ``lookup``, a ``previousBuildGetter`` or an IRC/Gerrit/GitHub
callback written for 0.8 calls ``build.getResults()``, ``build.getSteps()``,
``master_status.getURLForThing(build)`` and so on. These classes answer those calls from
the status database, so such a callback runs here after changing its import prefix.

They are snapshots, not live objects: a :class:`BuildStatus` is read in one short read
transaction through :mod:`bbweb.status.queries` and holds plain records afterwards, never a
connection. What a callback may ask for later (the previous build, a log's text, a change)
is read when asked, each time in its own short transaction, so a slow callback never pins
the database. A log's text is streamed by chunks (:mod:`bbweb.status.logstream`); the
whole-text methods stop at :data:`LOG_TEXT_LIMIT` characters, keeping the end of the log.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

from markupsafe import escape

from bbweb.db.connection import Database
from bbweb.mastercfg.master import MasterConfig
from bbweb.mastercfg.properties import RenderContext
from bbweb.mastercfg.properties import render as render_value
from bbweb.status import build_history, detail, logstream, queries
from bbweb.status.naming import natural_key
from bbweb.status.records import (
    BuilderInfo,
    BuildInfo,
    ChangeInfo,
    LogInfo,
    Property,
    SourceStampInfo,
    StepInfo,
)
from bbweb.values.results import EXCEPTION, FAILURE, SKIPPED, WARNINGS

LOG_TEXT_LIMIT = 16 * 1024 * 1024
"""Characters :meth:`LogFile.getText` returns at most; a longer log gives its last part,
after a line saying how much was left out (0.8 read the whole file into memory)."""

CHANNELS = {"o": 0, "e": 1, "h": 2}
"""0.8's log channel numbers: stdout, stderr, header."""


class Properties:
    """A build's properties as 0.8's ``Properties`` object offered them to callbacks."""

    def __init__(self, props: Iterable[Property], sourcestamps: Iterable[SourceStampInfo] = ()
                 ) -> None:
        self._props = {name: (value, source) for name, value, source in props}
        self._stamps = {ss.codebase: {"branch": ss.branch, "revision": ss.revision,
                                      "repository": ss.repository, "project": ss.project,
                                      "codebase": ss.codebase} for ss in sourcestamps}

    def getProperty(self, name: str, default: Any = None) -> Any:
        return self._props[name][0] if name in self._props else default

    def hasProperty(self, name: str) -> bool:
        return name in self._props

    has_key = hasProperty

    def __contains__(self, name: object) -> bool:
        return name in self._props

    def __getitem__(self, name: str) -> Any:
        return self._props[name][0]

    def asList(self) -> list[tuple[str, Any, str]]:
        return sorted((name, value, source) for name, (value, source) in self._props.items())

    def asDict(self) -> dict[str, tuple[Any, str]]:
        return dict(self._props)

    def render(self, value: Any) -> Any:
        """``Interpolate``/``WithProperties``/``Property`` anywhere in ``value``, filled in
        (0.8 returned a Deferred; a callback here gets the value itself)."""
        context = RenderContext({n: v for n, (v, _s) in self._props.items()}, self._stamps)
        return render_value(value, context)


class Change:
    """A change as 0.8's ``Change`` object: ``who``, ``comments``, ``files`` (sorted)…"""

    def __init__(self, info: ChangeInfo) -> None:
        self.number = info.number
        self.who = info.author
        self.comments = info.comments
        self.isdir = info.is_dir
        self.revision = info.revision
        self.branch = info.branch
        self.category = info.category
        self.revlink = info.revlink
        self.repository = info.repository
        self.codebase = info.codebase
        self.project = info.project
        self.when = info.when
        self.files = sorted(info.files)
        self.properties = Properties(info.properties)

    def getTime(self) -> str:
        if not self.when:
            return "?"
        return time.strftime("%a %d %b %Y %H:%M:%S", time.localtime(self.when))

    def getTimes(self) -> tuple[float | None, None]:
        return (self.when, None)

    def getText(self) -> list[str]:
        return [str(escape(self.who))]

    def getShortAuthor(self) -> str:
        return self.who

    def asText(self) -> str:
        """0.8's plain-text summary, with the line break after the comments that 0.8
        forgot (its properties ran on after the last line of the comments)."""
        lines: list[str] = []
        if len(self.files) == 1:
            lines.append(("Directory: " if self.isdir else "File: ") + self.files[0])
        else:
            lines.append("Files:")
            lines.extend(" " + f for f in self.files)
        if self.repository:
            lines.append("On: " + self.repository)
        if self.project:
            lines.append("For: " + self.project)
        lines.append("At: " + self.getTime())
        lines.append("Changed By: " + self.who)
        lines.append("Comments: " + self.comments)
        lines.append("Properties: ")
        lines.extend(f"  {name}: {value}" for name, value, _s in self.properties.asList())
        return "\n".join(lines) + "\n\n"

    def asDict(self) -> dict[str, Any]:
        return {"number": self.number, "branch": self.branch, "category": self.category,
                "who": self.who, "comments": self.comments, "revision": self.revision,
                "rev": self.revision, "when": self.when, "at": self.getTime(),
                "files": [{"name": f} for f in self.files], "revlink": self.revlink,
                "properties": [list(p) for p in self.properties.asList()],
                "repository": self.repository, "codebase": self.codebase,
                "project": self.project}


class SourceStamp:
    """A source stamp: ``branch``, ``revision``, ``patch`` as ``(level, body, subdir)``,
    ``patch_info`` as ``(author, comment)``, ``changes`` (a tuple of :class:`Change`)."""

    def __init__(self, info: SourceStampInfo, revision: str | None = None) -> None:
        self.ssid = info.id
        self.branch = info.branch
        self.revision = revision if revision is not None else info.revision
        self.repository = info.repository
        self.project = info.project
        self.codebase = info.codebase
        self.patch = None if info.patch is None else (info.patch.level, info.patch.body,
                                                      info.patch.subdir)
        self.patch_info = None if info.patch is None else (info.patch.author,
                                                           info.patch.comment)
        self.changes = tuple(Change(c) for c in info.changes)


class MasterStatus:
    """``master_status`` in callbacks: the title, URLs, builders and changes of this master."""

    def __init__(self, db: Database, cfg: MasterConfig) -> None:
        self.db = db
        self.config = cfg

    def getTitle(self) -> str:
        return self.config.title

    def getTitleURL(self) -> str:
        return self.config.titleURL

    def getBuildbotURL(self) -> str:
        return self.config.buildbotURL

    def getURLForThing(self, thing: Any) -> str | None:
        """The page of a builder, build, step, log, slave or change; None for anything
        else or when ``buildbotURL`` is empty. Each name is one fully escaped segment."""
        prefix = self.getBuildbotURL()
        if not prefix:
            return None
        if isinstance(thing, MasterStatus):
            return prefix
        path = _thing_path(thing)
        return None if path is None else prefix + path

    def getURLForBuild(self, builderName: str, number: int) -> str | None:
        prefix = self.getBuildbotURL()
        return prefix + f"builders/{_segment(builderName)}/builds/{number}" if prefix else None

    def getBuilderNames(self, categories: Iterable[str] | None = None) -> list[str]:
        wanted = None if categories is None else set(categories)
        return sorted((b.name for b in self.config.builders.values()
                       if wanted is None or b.category in wanted), key=natural_key)

    def getBuilder(self, name: str) -> BuilderStatus:
        """Raises KeyError for a builder this master does not configure, as 0.8 did."""
        if name not in self.config.builders:
            raise KeyError(name)
        return BuilderStatus(self, name)

    def getSlaveNames(self) -> list[str]:
        return sorted(self.config.slaves, key=natural_key)

    def getChange(self, number: int) -> Change | None:
        with self.db.read() as conn:
            info = queries.get_change(conn, number)
        return None if info is None else Change(info)

    def getBuild(self, builderName: str, number: int) -> BuildStatus | None:
        """Build ``number`` of a builder (negative counts back from the latest), read
        with its steps, properties and source stamps in one transaction."""
        with self.db.read() as conn:
            builder, build = detail.find_build(conn, builderName, number, details=True)
        if builder is None or build is None:
            return None
        return BuildStatus(BuilderStatus(self, builder.name, builder), build)

    def getBuildById(self, buildid: int) -> BuildStatus | None:
        with self.db.read() as conn:
            found = queries.builds_by_id(conn, [buildid], details=True).get(buildid)
            builder = None if found is None else queries.get_builder(conn, found.builder)
        if found is None:
            return None
        return BuildStatus(BuilderStatus(self, found.builder, builder), found)

    def getBuildsOfBuildset(self, buildsetid: int) -> list[BuildStatus]:
        """Every build run for a buildset's requests, retried ones included (what 0.8's
        buildset summary mail collected), each with its details, in start order."""
        with self.db.read() as conn:
            ids = build_history.buildset_build_ids(conn, buildsetid)
            found = queries.builds_by_id(conn, ids, details=True)
            infos = {b.builder: queries.get_builder(conn, b.builder)
                     for b in found.values()}
        return [BuildStatus(BuilderStatus(self, found[i].builder, infos[found[i].builder]),
                            found[i]) for i in ids if i in found]

    def getPatchBody(self, sourcestamp: SourceStamp) -> bytes | None:
        """A source stamp's patch as the bytes that were submitted (``ss.patch[1]`` is
        text, with undecodable bytes replaced)."""
        with self.db.read() as conn:
            return build_history.patch_body(conn, sourcestamp.ssid)

    def asDict(self) -> dict[str, str]:
        return {"title": self.getTitle(), "titleURL": self.getTitleURL(),
                "buildbotURL": self.getBuildbotURL()}


class BuilderStatus:
    """One builder: its name, category, builds and state."""

    def __init__(self, master: MasterStatus, name: str, info: BuilderInfo | None = None
                 ) -> None:
        self.master = master
        self.name = name
        self._info = info
        cfg = master.config.builders.get(name)
        self.category = cfg.category if cfg is not None else (info.category if info else None)
        self.description = getattr(cfg, "description", None)

    def getName(self) -> str:
        return self.name

    def getCategory(self) -> str | None:
        return self.category

    def getDescription(self) -> str | None:
        return self.description

    def getBuild(self, number: int) -> BuildStatus | None:
        return self.master.getBuild(self.name, number)

    def getLastFinishedBuild(self) -> BuildStatus | None:
        """The newest finished build (0.8 tried only the last two)."""
        with self.master.db.read() as conn:
            builder = queries.get_builder(conn, self.name)
            found = [] if builder is None else queries.latest_builds(
                conn, builder, 1, details=True, finished_only=True)
        return BuildStatus(self, found[0]) if found else None

    def getSlaves(self) -> list[str]:
        cfg = self.master.config.builders.get(self.name)
        return list(cfg.slavenames) if cfg is not None else []

    def getCurrentBuilds(self) -> list[BuildStatus]:
        with self.master.db.read() as conn:
            builder = queries.get_builder(conn, self.name)
            running = [] if builder is None else queries.running_builds(
                conn, builderids=[builder.id], details=True)
        return [BuildStatus(self, b) for b in running]

    def getState(self) -> tuple[str, list[BuildStatus]]:
        """``("building" | "idle" | "offline", current builds)``."""
        current = self.getCurrentBuilds()
        if current:
            return "building", current
        with self.master.db.read() as conn:
            connected = queries.connected_slave_names(conn, self.getSlaves())
        return ("idle" if connected else "offline"), []


class BuildStatus:
    """One build, read once. ``results`` is None while it runs."""

    def __init__(self, builder: BuilderStatus, info: BuildInfo) -> None:
        self.builder = builder
        self.info = info
        self.number = info.number
        self.results = info.results
        self.reason = info.reason
        self.text = list(info.text)
        self._properties = Properties(info.properties, info.sourcestamps)

    def __repr__(self) -> str:
        return f"<BuildStatus {self.builder.name} #{self.number}>"

    def getBuilder(self) -> BuilderStatus:
        return self.builder

    def getNumber(self) -> int:
        return self.number

    def getPreviousBuild(self) -> BuildStatus | None:
        """Build number N-1 of the same builder (possibly still running), as in 0.8."""
        return self.builder.getBuild(self.number - 1) if self.number > 0 else None

    def getPreviousFinishedBuild(self) -> BuildStatus | None:
        """The newest earlier-numbered build of this builder that had finished when this
        one finished (by now, for a running build): what notifiers compare with. Unlike
        :meth:`getPreviousBuild` it is never a build still running, and the answer does
        not change when it is asked later."""
        with self.builder.master.db.read() as conn:
            buildid = build_history.previous_finished_build_id(
                conn, self.info.builderid, self.number, self.info.finished_at)
        return None if buildid is None else self.builder.master.getBuildById(buildid)

    def getSourceStamps(self, absolute: bool = False) -> list[SourceStamp]:
        """With ``absolute``, each stamp carries the revision that was checked out
        (``got_revision``) where the build recorded one."""
        stamps = self.info.sourcestamps
        if not absolute:
            return [SourceStamp(ss) for ss in stamps]
        props = self.info.properties
        return [SourceStamp(ss, detail.got_revision(props, ss, len(stamps))) for ss in stamps]

    def getSourceStamp(self) -> SourceStamp | None:
        stamps = self.getSourceStamps()
        return stamps[0] if stamps else None

    def getAllGotRevisions(self) -> dict[str, Any]:
        value = self.getProperty("got_revision")
        if value is None:
            return {}
        return dict(value) if isinstance(value, dict) else {"": value}

    def getReason(self) -> str:
        return self.reason

    def getChanges(self) -> list[Change]:
        return [c for ss in self.getSourceStamps() for c in ss.changes]

    def getRevisions(self) -> str:
        return ", ".join(str(c.revision)[:7] for c in self.getChanges() if c.revision)

    def getResponsibleUsers(self) -> list[str]:
        """The blamelist: change authors and patch authors, each once, sorted."""
        users = {c.who for c in self.getChanges()}
        users.update(ss.patch_info[0] for ss in self.getSourceStamps()
                     if ss.patch_info and ss.patch_info[0])
        return sorted(users)

    def getInterestedUsers(self) -> list[str]:
        """The ``owners`` property, or the ``owner`` a forced build or a rebuild recorded."""
        owners = self.getProperty("owners")
        if isinstance(owners, list | tuple):
            return [str(o) for o in owners if o]
        owner = self.getProperty("owner")
        return [str(owner)] if owner else []

    def getSteps(self) -> list[BuildStepStatus]:
        return [BuildStepStatus(self, s) for s in self.info.steps]

    def getCurrentStep(self) -> BuildStepStatus | None:
        step = self.info.current_step
        return None if step is None else BuildStepStatus(self, step)

    def getTimes(self) -> tuple[float, float | None]:
        return (self.info.started_at, self.info.finished_at)

    def getETA(self) -> float | None:
        return None

    def getText(self) -> list[str]:
        """The build's summary words (bbweb stores the failing steps' words with it)."""
        return list(self.text)

    def getResults(self) -> int | None:
        return self.results

    def getSlavename(self) -> str:
        return self.info.slave or "???"

    def getLogs(self) -> list[LogFile]:
        return [log for step in self.getSteps() for log in step.getLogs()]

    def isFinished(self) -> bool:
        return self.info.is_finished

    def getProperty(self, name: str, default: Any = None) -> Any:
        return self._properties.getProperty(name, default)

    def hasProperty(self, name: str) -> bool:
        return self._properties.hasProperty(name)

    def getProperties(self) -> Properties:
        return self._properties

    def render(self, value: Any) -> Any:
        return self._properties.render(value)


class BuildStepStatus:
    """One step of a build."""

    def __init__(self, build: BuildStatus, info: StepInfo) -> None:
        self.build = build
        self.info = info

    def getName(self) -> str:
        return self.info.name

    def getBuild(self) -> BuildStatus:
        return self.build

    def getTimes(self) -> tuple[float | None, float | None]:
        return (self.info.started_at, self.info.finished_at)

    def getText(self) -> list[str]:
        return list(self.info.text)

    def getResults(self) -> tuple[int | None, list[str]]:
        """``(result, text2)``: text2 is what the step adds to its build's summary, only
        when it did not succeed."""
        result = self.info.results
        if result in (WARNINGS, FAILURE, EXCEPTION):
            words = [w for w in self.info.text if w not in ("failed", "warnings", "exception")]
            return result, words or [self.info.name]
        return result, []

    def getLogs(self) -> list[LogFile]:
        return [LogFile(self, log) for log in self.info.logs]

    def getURLs(self) -> dict[str, str]:
        return dict(self.info.urls)

    def getStatistic(self, name: str, default: Any = None) -> Any:
        return self.info.statistics.get(name, default)

    def hasStatistic(self, name: str) -> bool:
        return name in self.info.statistics

    def getStatistics(self) -> dict[str, Any]:
        return dict(self.info.statistics)

    def getETA(self) -> float | None:
        return None

    def isStarted(self) -> bool:
        return self.info.is_started

    def isFinished(self) -> bool:
        return self.info.is_finished

    def isSkipped(self) -> bool:
        return self.info.results == SKIPPED

    def isHidden(self) -> bool:
        return self.info.hidden


class LogFile:
    """One log of a step. Text is read from the log store when asked, chunk by chunk."""

    def __init__(self, step: BuildStepStatus, info: LogInfo) -> None:
        self.step = step
        self.info = info
        self._db = step.build.builder.master.db

    def getName(self) -> str:
        return self.info.name

    def getStep(self) -> BuildStepStatus:
        return self.step

    def isFinished(self) -> bool:
        return self.info.complete

    def hasContents(self) -> bool:
        return detail.log_has_contents(self.info)

    def iterChunks(self, channels: Iterable[int] = ()) -> Iterator[tuple[int, str]]:
        """``(channel, text)`` pairs in order, read in bounded batches: the way to walk a
        log of any size."""
        wanted = set(channels)
        streams = "".join(s for s, c in CHANNELS.items() if not wanted or c in wanted)
        for chunk in logstream.iter_chunks(self._db, self.info.id, streams=streams):
            yield CHANNELS[chunk.stream], chunk.text

    def getChunks(self, channels: Iterable[int] = (), onlyText: bool = False) -> list[Any]:
        pieces = list(self.iterChunks(channels))
        return [text for _c, text in pieces] if onlyText else pieces

    def getTail(self, limit: int, channels: Iterable[int] = (0, 1)) -> tuple[str, bool]:
        """The last ``limit`` characters of the log (stdout and stderr by default), and
        whether anything came before them; memory stays bounded by ``limit``."""
        wanted = set(channels)
        streams = "".join(s for s, c in CHANNELS.items() if c in wanted)
        return logstream.tail_text(self._db, self.info.id, limit, streams)

    def getText(self) -> str:
        """stdout and stderr without headers. Past :data:`LOG_TEXT_LIMIT` characters only
        the end is returned, after a line that says so."""
        return _with_cut_note(*self.getTail(LOG_TEXT_LIMIT))

    def getTextWithHeaders(self) -> str:
        return _with_cut_note(*self.getTail(LOG_TEXT_LIMIT, channels=(0, 1, 2)))

    def readlines(self) -> list[str]:
        return self.getText().splitlines(keepends=True)


def _with_cut_note(text: str, cut: bool) -> str:
    if not cut:
        return text
    return f"[the start of this log is not shown: only its last {len(text)} characters]\n" + text


def _segment(name: str) -> str:
    return quote(str(name), safe="")


def _thing_path(thing: Any) -> str | None:
    if isinstance(thing, BuilderStatus):
        return "builders/" + _segment(thing.name)
    if isinstance(thing, BuildStatus):
        return f"builders/{_segment(thing.builder.name)}/builds/{thing.number}"
    if isinstance(thing, BuildStepStatus):
        build = _thing_path(thing.build)
        return f"{build}/steps/{_segment(thing.getName())}"
    if isinstance(thing, LogFile):
        return f"{_thing_path(thing.step)}/logs/{_segment(thing.getName())}"
    if isinstance(thing, Change):
        return f"changes/{thing.number}"
    return None


__all__ = ["CHANNELS", "LOG_TEXT_LIMIT", "BuildStatus", "BuildStepStatus", "BuilderStatus",
           "Change", "LogFile", "MasterStatus", "Properties", "SourceStamp"]
