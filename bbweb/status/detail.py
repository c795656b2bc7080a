"""Reads for the build, step, log and change pages, and the small judgements they share.

Every function keeps the rule of :mod:`bbweb.status.queries`: the queries a page issues
depend on what it shows, never on how much history exists. A build page is two lookups by
index plus :func:`~bbweb.status.queries.load_build_details`; a log page reads the build's
steps and logs (two queries) and then its chunks in bounded batches
(:mod:`bbweb.status.logstream`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from bbweb.status import queries
from bbweb.status.records import (
    BuilderInfo,
    BuildInfo,
    LogInfo,
    Property,
    SourceStampInfo,
    StepInfo,
)

FORCE_SOURCE = "Force Build Form"
PROPERTY_VALUE_LIMIT = 500
TOO_LONG = " .. [property value too long]"
_INDEX = re.compile(r"-?[0-9]+")


def find_build(conn: Connection, builder_name: str, number: int, *, details: bool = True
               ) -> tuple[BuilderInfo | None, BuildInfo | None]:
    """The builder row and its build ``number`` (negative: counted back from the next
    number, ``-1`` is the latest). Two indexed queries, plus the details when asked."""
    builder = queries.get_builder(conn, builder_name)
    if builder is None:
        return None, None
    return builder, queries.get_build(conn, builder, number, details=details)


def find_build_with_steps(conn: Connection, builder_name: str, number: int
                          ) -> tuple[BuilderInfo | None, BuildInfo | None]:
    """Like :func:`find_build`, with the build's steps and their logs but without
    properties and sourcestamps (four queries in all)."""
    builder, build = find_build(conn, builder_name, number, details=False)
    if build is not None:
        build.steps = queries.build_steps(conn, [build.id]).get(build.id, [])
    return builder, build


def select_step(steps: list[StepInfo], selector: str) -> StepInfo | None:
    """A step by exact name (the first with that name), else by index (``-1`` = last)."""
    for step in steps:
        if step.name == selector:
            return step
    if _INDEX.fullmatch(selector):
        index = int(selector)
        if -len(steps) <= index < len(steps):
            return steps[index]
    return None


def select_log(step: StepInfo, name: str) -> LogInfo | None:
    for log in step.logs:
        if log.name == name:
            return log
    return None


def log_has_contents(log: LogInfo) -> bool:
    """Whether a log is worth a link: it has output, or it is still being written."""
    return log.num_chunks > 0 or not log.complete


# -- properties ---------------------------------------------------------------------------------

def value_text(value: Any) -> str:
    """A property value as text: strings as they are, None as nothing, anything else as
    JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def shorten(text: str, limit: int = PROPERTY_VALUE_LIMIT) -> tuple[str, bool]:
    if len(text) > limit:
        return text[:limit] + TOO_LONG, True
    return text, False


@dataclass
class PropertyRow:
    name: str
    source: str
    text: str = ""  # the (possibly shortened) value when it is not a dict
    truncated: bool = False
    items: list[tuple[str, str, bool]] | None = None  # a dict value: (key, text, truncated)
    label: str = ""  # forced properties: the force form's label


def property_row(name: str, value: Any, source: str) -> PropertyRow:
    row = PropertyRow(name=name, source=source)
    if isinstance(value, dict):
        row.items = []
        for key in sorted(value, key=str):
            text, cut = shorten(value_text(value[key]))
            row.items.append((str(key), text, cut))
    else:
        row.text, row.truncated = shorten(value_text(value))
    return row


def _param_label(param: Any, name: str) -> str | None:
    if param is None or getattr(param, "name", None) != name:
        return None
    label = getattr(param, "label", None)
    return str(label) if label else name


def forced_label(cfg: Any, scheduler_name: Any, name: str) -> str:
    """The force form's label for a forced property (matched by name among the
    ForceScheduler's parameters), else the name itself."""
    sched = cfg.schedulers.get(scheduler_name) if isinstance(scheduler_name, str) else None
    if sched is not None:
        params = list(getattr(sched, "property_params", []) or [])
        params += [getattr(sched, "reason_param", None), getattr(sched, "username_param", None)]
        for param in params:
            label = _param_label(param, name)
            if label is not None:
                return label
    return name


def split_properties(cfg: Any, props: list[Property]
                     ) -> tuple[list[PropertyRow], list[PropertyRow]]:
    """(build properties, forced properties): the second are those whose source is the
    force form, labelled from the ForceScheduler named by the ``scheduler`` property."""
    scheduler = next((v for n, v, _s in props if n == "scheduler"), None)
    plain: list[PropertyRow] = []
    forced: list[PropertyRow] = []
    for name, value, source in props:
        row = property_row(name, value, source)
        if source == FORCE_SOURCE:
            row.label = forced_label(cfg, scheduler, name)
            forced.append(row)
        else:
            plain.append(row)
    return plain, forced


def got_revision(props: list[Property], stamp: SourceStampInfo, stamps: int) -> str | None:
    """The ``got_revision`` of one codebase: a dict property is looked up by codebase; a
    plain value belongs to the default codebase (or to the only sourcestamp)."""
    value = next((v for n, v, _s in props if n == "got_revision"), None)
    if isinstance(value, dict):
        found = value.get(stamp.codebase)
        return str(found) if found else None
    if value and (stamp.codebase == "" or stamps == 1):
        return str(value)
    return None


__all__ = ["FORCE_SOURCE", "PROPERTY_VALUE_LIMIT", "TOO_LONG", "PropertyRow", "find_build",
           "find_build_with_steps", "forced_label", "got_revision", "log_has_contents",
           "property_row", "select_log", "select_step", "shorten", "split_properties",
           "value_text"]
