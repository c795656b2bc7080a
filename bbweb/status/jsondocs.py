"""Buildbot 0.8's JSON document shapes, made from the dataclasses of
:mod:`bbweb.status.queries`.

Key names and value types are exactly 0.8's (``builderName``, ``sourceStamps``, ``times``
as ``[start, end]`` float epoch seconds, ``results`` null while running…) because scripts
written against 0.8 parse them. Nothing here touches the database.
"""

from __future__ import annotations

import functools
import time
from typing import Any
from urllib.parse import quote

from bbweb.status.records import (
    BuilderSummary,
    BuildInfo,
    BuildRequestInfo,
    ChangeInfo,
    LogInfo,
    Property,
    SlaveInfo,
    SourceStampInfo,
    StepInfo,
)
from bbweb.values.results import EXCEPTION, FAILURE, WARNINGS

Doc = dict[str, Any]


def format_change_time(when: float) -> str:
    """A change's ``at``: server-local ``Ddd DD Mon YYYY HH:MM:SS``."""
    return time.strftime("%a %d %b %Y %H:%M:%S", time.localtime(when))


@functools.lru_cache(maxsize=4096)
def _quoted(name: str) -> str:
    """A name as one URL path segment. The same few builder, step and log names come back
    in every document, so each is quoted once (a memo of pure results)."""
    return quote(name, safe="")


def _steps_url(buildbot_url: str, builder: str, number: int) -> str:
    """The absolute URL of a build's ``steps/``, from which its log URLs go on."""
    prefix = buildbot_url if buildbot_url.endswith("/") else buildbot_url + "/"
    return f"{prefix}builders/{_quoted(builder)}/builds/{number}/steps/"


def log_url(buildbot_url: str | None, builder: str, number: int, step: str,
            log: str) -> str | None:
    """The absolute URL of a log page, or None when ``buildbotURL`` is not set."""
    if not buildbot_url:
        return None
    return f"{_steps_url(buildbot_url, builder, number)}{_quoted(step)}/logs/{_quoted(log)}"


def properties_doc(props: list[Property]) -> list[list[Any]]:
    return [[name, value, source] for name, value, source in props]


def change_doc(change: ChangeInfo) -> Doc:
    return {
        "number": change.number,
        "branch": change.branch,
        "category": change.category,
        "who": change.author,
        "comments": change.comments,
        "revision": change.revision,
        "rev": change.revision,
        "when": change.when,
        "at": format_change_time(change.when),
        "files": [{"name": f} for f in change.files],
        "revlink": change.revlink,
        "properties": properties_doc(change.properties),
        "repository": change.repository,
        "codebase": change.codebase,
        "project": change.project,
    }


def sourcestamp_doc(ss: SourceStampInfo) -> Doc:
    doc: Doc = {
        "revision": ss.revision,
        "hasPatch": ss.patch is not None,
        "branch": ss.branch,
        "changes": [change_doc(c) for c in ss.changes],
        "project": ss.project,
        "repository": ss.repository,
        "codebase": ss.codebase,
    }
    if ss.patch is not None:
        doc["patch_level"] = ss.patch.level
        doc["patch_body"] = ss.patch.body
        doc["patch_subdir"] = ss.patch.subdir
        doc["patch_author"] = ss.patch.author
        doc["patch_comment"] = ss.patch.comment
    return doc


def step_summary_text(step: StepInfo) -> list[str]:
    """0.8's ``text2``: what a step adds to its build's summary - its name when it made the
    build worse (warnings, failure, exception), nothing otherwise."""
    if step.results in (WARNINGS, FAILURE, EXCEPTION):
        return [step.name]
    return []


def _logs_doc(buildbot_url: str | None, build: BuildInfo, step: StepInfo,
              step_logs: list[LogInfo]) -> list[list[Any]]:
    if not buildbot_url:
        return [[lg.name, None] for lg in step_logs]
    base = f"{_steps_url(buildbot_url, build.builder, build.number)}{_quoted(step.name)}/logs/"
    return [[lg.name, base + _quoted(lg.name)] for lg in step_logs]


def step_doc(build: BuildInfo, step: StepInfo, buildbot_url: str | None,
             logs: list[list[Any]] | None = None) -> Doc:
    """``logs``: the step's ``[name, URL]`` pairs when the caller has them already."""
    return {
        "name": step.name,
        "text": step.text,
        "results": [step.results, step_summary_text(step) if step.is_finished else []],
        "isStarted": step.is_started,
        "isFinished": step.is_finished,
        "statistics": step.statistics,
        "times": [step.started_at, step.finished_at],
        "expectations": [],
        "eta": None,
        "urls": step.urls,
        "step_number": step.number,
        "hidden": step.hidden,
        "logs": _logs_doc(buildbot_url, build, step, step.logs) if logs is None else logs,
    }


def build_doc(build: BuildInfo, buildbot_url: str | None) -> Doc:
    current = build.current_step
    # each step's logs once, for the build's list and the step's (lists shared by the two
    # places are only read: the document is encoded, filtered into a copy or merged by key)
    step_logs = [_logs_doc(buildbot_url, build, s, s.logs) for s in build.steps]
    return {
        "builderName": build.builder,
        "number": build.number,
        "sourceStamps": [sourcestamp_doc(ss) for ss in build.sourcestamps],
        "reason": build.reason,
        "blame": build.blame,
        "properties": properties_doc(build.properties),
        "times": [build.started_at, build.finished_at],
        "text": build.text,
        "results": build.results,
        "slave": build.slave,
        "logs": [lg for pairs in step_logs for lg in pairs],
        "eta": None,
        "steps": [step_doc(build, s, buildbot_url, pairs)
                  for s, pairs in zip(build.steps, step_logs, strict=True)],
        "currentStep": step_doc(build, current, buildbot_url) if current else None,
    }


def builder_doc(summary: BuilderSummary, cache_size: int) -> Doc:
    """``cachedBuilds`` has no in-memory cache to report here: it lists the builds a
    0.8 master would keep cached in steady state, the newest ``cache_size`` ones, plus the
    running builds."""
    newest = range(max(0, summary.next_number - cache_size), summary.next_number)
    return {
        "basedir": summary.basedir,
        "category": summary.category,
        "slaves": summary.slavenames,
        "schedulers": summary.schedulers,
        "cachedBuilds": sorted(set(newest) | set(summary.current_builds)),
        "currentBuilds": summary.current_builds,
        "state": summary.state,
        "pendingBuilds": summary.pending,
    }


def slave_doc(slave: SlaveInfo, running: list[BuildInfo], recent: dict[str, list[int]],
              builder_names: list[str], buildbot_url: str | None) -> Doc:
    """``recent`` maps builder name -> recent finished build numbers run by this slave;
    every builder in ``builder_names`` gets a key (an empty list when none)."""
    return {
        "name": slave.name,
        "access_uri": slave.access_uri,
        "host": slave.host,
        "admin": slave.admin,
        "version": slave.version,
        "connected": slave.connected,
        "runningBuilds": [build_doc(b, buildbot_url) for b in running],
        "info": dict(slave.info),
        "builders": {name: list(recent.get(name, [])) for name in builder_names},
    }


def build_request_doc(req: BuildRequestInfo, buildbot_url: str | None) -> Doc:
    source = sourcestamp_doc(req.sourcestamps[0]) if req.sourcestamps else None
    return {
        "source": source,
        "properties": properties_doc(req.properties),
        "builderName": req.builder,
        "submittedAt": req.submitted_at,
        "builds": [build_doc(b, buildbot_url) for b in req.builds],
    }


def change_source_doc(source: Any) -> Doc:
    describe = getattr(source, "describe", None)
    if callable(describe):
        try:
            return {"description": str(describe())}
        except Exception:  # a broken describe() must not take the page down
            pass
    return {"description": type(source).__name__}


# -- output filtering ---------------------------------------------------------------------------

def _is_empty(value: Any) -> bool:
    """0.8's "empty" set (None, False, "", [], {}, ()) by identity and type, so that the
    integer 0 and 0.0 are *kept* (0.8 compared with ``==`` and dropped them)."""
    if value is None or value is False:
        return True
    return isinstance(value, str | list | tuple | dict) and len(value) == 0


def filter_empty(data: Any) -> Any:
    """The ``filter`` flag: recursively drop dict entries whose value is empty; a list
    whose items are all empty becomes None (and so disappears from its parent)."""
    if isinstance(data, list | tuple):
        items = [filter_empty(v) for v in data]
        if all(_is_empty(v) for v in items):
            return None
        return items
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            value = filter_empty(value)
            if not _is_empty(value):
                out[key] = value
        return out
    return data
