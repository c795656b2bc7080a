"""The ``/json`` resource tree: nodes with children, a document and a help text.

A URL path (or a ``select`` value) is resolved segment by segment from the root; each node
knows its children and renders its own document. All database access goes through one
:class:`JsonRequest` per HTTP request, which batches and caches what the nodes ask for, so
``?select=-1&select=-2&…&select=-20`` loads twenty builds with the same handful of queries
as one build (see :func:`prefetch_paths`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from sqlalchemy.engine import Connection

from bbweb.mastercfg.master import MasterConfig
from bbweb.status import jsondocs, queries
from bbweb.status.jsoncache import BuildDocCache, MadeDocCache, RawDoc, build_stamp
from bbweb.status.records import BuilderInfo, BuilderSummary, BuildInfo, ChangeInfo, SourceStampInfo

NOT_AVAILABLE: dict[str, str] = {"error": "Not available"}
_NUMBER = re.compile(r"[-+]?[0-9]+")


@dataclass
class JsonRequest:
    """Everything one ``/json`` request reads, fetched in batches and cached.

    ``max_builds`` and ``numbuilds`` are the parsed query arguments (None when absent).
    ``doc_cache`` is the process's kept build documents: a build whose document is kept
    (and still current, by its row) has its steps, properties and sourcestamps read only
    when a path goes below it (all such builds of the request in one batch).
    """

    conn: Connection
    cfg: MasterConfig
    max_builds: int | None = None
    numbuilds: int | None = None
    doc_cache: BuildDocCache | None = None
    # the process's encoded documents of all builders / all slaves, by the rows read
    made_docs: MadeDocCache | None = None
    # the process's finished builds' slaves (slave documents' recent builds)
    finished_slaves: queries.FinishedBuildSlaves | None = None
    # whether a kept (encoded) document was handed out: the answer must splice it in
    raw_docs: bool = False
    _builders: dict[str, BuilderInfo] | None = None
    _one_builder: dict[str, BuilderInfo] = field(default_factory=dict)
    _summaries: dict[str, BuilderSummary] = field(default_factory=dict)
    _builds: dict[tuple[int, int], BuildInfo | None] = field(default_factory=dict)
    _slave_docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # kept documents found when the builds were read (so that one dropped from the cache
    # meanwhile by another thread does not cost a batch of its own)
    _kept: dict[int, RawDoc] = field(default_factory=dict)

    @property
    def buildbot_url(self) -> str | None:
        return self.cfg.buildbotURL or None

    @property
    def cache_size(self) -> int:
        return self.cfg.build_cache_size

    @property
    def max_value(self) -> int:
        """``max`` for ``builds/_all``: default the build cache size."""
        return self.cache_size if self.max_builds is None else self.max_builds

    @property
    def numbuilds_value(self) -> int:
        """How many of a builder's newest builds a slave document scans: default the
        cache size minus one, 0.8's default."""
        return max(self.cache_size - 1, 0) if self.numbuilds is None else self.numbuilds

    # -- builders -----------------------------------------------------------------------------

    def builders(self) -> dict[str, BuilderInfo]:
        """Rows of every configured builder (one query, once per request)."""
        if self._builders is None:
            self._builders = self._rows(self.cfg.builders)
        return self._builders

    def builder(self, name: str) -> BuilderInfo | None:
        """One configured builder's row. A URL below one builder reads that row only; once
        every row was read (a ``select`` prefetches them), from those."""
        if name not in self.cfg.builders:
            return None
        if self._builders is not None:
            return self._builders.get(name)
        row = self._one_builder.get(name)
        if row is None:
            row = self._one_builder[name] = self._rows([name])[name]
        return row

    def _rows(self, names: Collection[str]) -> dict[str, BuilderInfo]:
        """Rows of configured builders (one query); a builder not synced yet, without
        history, as an empty row."""
        return self._missing_rows(names, queries.builder_rows(self.conn, names))

    def _missing_rows(self, names: Collection[str], rows: dict[str, BuilderInfo]
                      ) -> dict[str, BuilderInfo]:
        for name in names:
            if name not in rows:
                bcfg = self.cfg.builders[name]
                rows[name] = BuilderInfo(id=-1, name=name, category=bcfg.category,
                                         builddir=bcfg.builddir, next_number=0, active=True)
        return rows

    def summaries(self, names: Iterable[str]) -> dict[str, BuilderSummary]:
        wanted = [n for n in names if n in self.cfg.builders]
        missing = [n for n in wanted if n not in self._summaries]
        if missing:
            known = self._one_builder if self._builders is None else self._builders
            rows = known if all(n in known for n in missing) else self.builders()
            self._summaries.update(queries.builder_summaries(
                self.conn, self.cfg, missing, rows=rows))
        return {n: self._summaries[n] for n in wanted}

    def builder_docs(self, names: Iterable[str]) -> dict[str, Any]:
        return {n: jsondocs.builder_doc(s, self.cache_size)
                for n, s in self.summaries(names).items()}

    def all_builder_docs(self) -> dict[str, Any] | RawDoc:
        """Every configured builder's document (``/json/builders``): the same queries as
        :meth:`builder_docs`, and the process's kept text when they read what it was made
        from."""
        cache = self.made_docs
        if cache is None or self._summaries:
            return self.builder_docs(self.cfg.builders)
        names = list(self.cfg.builders)
        activity: queries.BuilderActivity | None = None
        if self._builders is None:
            found, activity = queries.all_builders_activity(self.conn, self.cfg, names)
            self._builders = self._missing_rows(names, found)
        rows = self._builders
        if activity is None:
            activity = queries.builder_activity(self.conn, self.cfg, names, rows)
        inputs = (self.cache_size, [rows[n] for n in names], activity)
        raw = cache.get("builders", inputs)
        if raw is None:
            summaries = queries.summarize_builders(self.cfg, names, rows, activity)
            raw = cache.put("builders", inputs, {n: jsondocs.builder_doc(s, self.cache_size)
                                                 for n, s in summaries.items()})
        self.raw_docs = True
        return raw

    # -- builds -------------------------------------------------------------------------------

    def builds(self, builder: BuilderInfo, numbers: Iterable[int]) -> dict[int, BuildInfo]:
        """Builds by (possibly relative) number, keyed by the number asked for."""
        absolute: dict[int, int] = {}
        for n in numbers:
            resolved = builder.resolve_number(n)
            if resolved is not None:
                absolute[n] = resolved
        missing = sorted({a for a in absolute.values() if (builder.id, a) not in self._builds})
        if missing:
            found = queries.get_builds(self.conn, builder, missing, details=False)
            self._load_uncached(list(found.values()))
            for a in missing:
                self._builds[(builder.id, a)] = found.get(a)
        out = {}
        for n, a in absolute.items():
            b = self._builds.get((builder.id, a))
            if b is not None:
                out[n] = b
        return out

    def build(self, builder: BuilderInfo, number: int) -> BuildInfo | None:
        return self.builds(builder, [number]).get(number)

    def latest_builds(self, builder: BuilderInfo, count: int) -> list[BuildInfo]:
        found = queries.latest_builds(self.conn, builder, count, details=False)
        self._load_uncached(found)
        for b in found:
            self._builds[(builder.id, b.number)] = b
        return found

    def _load_uncached(self, found: list[BuildInfo]) -> None:
        """Details of the builds whose document is not kept (one batch)."""
        cache = self.doc_cache
        if cache is None:
            queries.load_build_details(self.conn, found)
            return
        url = self.buildbot_url
        todo = []
        for b in found:
            raw = cache.get(b, url)
            if raw is None:
                todo.append(b)
            else:
                self._kept[b.id] = raw
        queries.load_build_details(self.conn, todo)

    def ensure_details(self) -> None:
        """Details of every build this request read and has not loaded (one batch): a path
        below a build (its steps, its source stamp) needs them."""
        queries.load_build_details(
            self.conn, [b for b in self._builds.values() if b is not None])

    def build_doc(self, build: BuildInfo) -> dict[str, Any] | RawDoc:
        """The build's document, as its kept encoded text where the process has it."""
        cache = self.doc_cache
        if cache is None:
            return jsondocs.build_doc(build, self.buildbot_url)
        self.raw_docs = True
        raw = self._kept.get(build.id) or cache.get(build, self.buildbot_url)
        if raw is not None:
            return raw
        if not build.details_loaded:
            queries.load_build_details(self.conn, [build])
        return cache.put(build, self.buildbot_url, jsondocs.build_doc(build, self.buildbot_url))

    # -- slaves -------------------------------------------------------------------------------

    def slave_docs(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Slave documents, computed for all missing names at once: one query for the
        slaves, one (+ build details) for their running builds, one for the recent-builds
        map."""
        wanted = [n for n in names if n in self.cfg.slaves]
        missing = [n for n in dict.fromkeys(wanted) if n not in self._slave_docs]
        if missing:
            self._slave_docs.update(self._make_slave_docs(missing, *self._read_slaves(missing)))
        return {n: self._slave_docs[n] for n in wanted}

    def all_slave_docs(self) -> dict[str, Any] | RawDoc:
        """Every configured slave's document (``/json/slaves``): the same queries as
        :meth:`slave_docs`, and the process's kept text when they read what it was made
        from (running builds by their stamp: their details are read only to make it).
        When every build of the builders' recent windows is known finished, the windows
        themselves stand for the recent-builds map (which they then settle)."""
        cache = self.made_docs
        names = list(self.cfg.slaves)
        if cache is None or self._slave_docs:
            return self.slave_docs(names)
        rows, running, used = self._read_slave_rows(names)
        ids = [r.id for r in rows.values()]
        window = self.numbuilds_value
        known = self.finished_slaves
        windows = sorted((b.id, b.next_number - window, b.next_number, b.name)
                         for b in used if b.next_number > 0)
        recent: dict[int, dict[str, list[int]]] | None = None
        if known is not None and window > 0 and ids and \
                known.knows_all([w[:3] for w in windows]):
            recent_inputs: Any = windows
        else:
            recent = recent_inputs = queries.recent_builds_by_slave(
                self.conn, used, ids, window, known=known)
        url = self.buildbot_url
        inputs = (window, url, rows, [build_stamp(b, url) for b in running], recent_inputs)
        raw = cache.get("slaves", inputs)
        if raw is None:
            if recent is None:
                recent = queries.recent_builds_by_slave(self.conn, used, ids, window,
                                                        known=known)
            raw = cache.put("slaves", inputs,
                            self._make_slave_docs(names, rows, running, recent))
        self.raw_docs = True
        return raw

    def _read_slaves(self, names: list[str]
                     ) -> tuple[dict[str, Any], list[BuildInfo], dict[int, dict[str, list[int]]]]:
        """The rows slave documents are made of: the slaves' rows, their running builds
        (without details) and the recent-builds map."""
        rows, running, used = self._read_slave_rows(names)
        recent = queries.recent_builds_by_slave(
            self.conn, used, [r.id for r in rows.values()], self.numbuilds_value,
            known=self.finished_slaves)
        return rows, running, recent

    def _read_slave_rows(self, names: list[str]
                         ) -> tuple[dict[str, Any], list[BuildInfo], list[BuilderInfo]]:
        """The slaves' rows, their running builds (without details) and the rows of the
        builders they serve."""
        rows = queries.slave_rows(self.conn, names)
        running = queries.running_builds(self.conn, slaveids=[r.id for r in rows.values()],
                                         details=False)
        all_builders = self.builders()
        used = {b for n in names for b in self.cfg.builders_for_slave(n)}
        return rows, running, [all_builders[b] for b in used if all_builders[b].id >= 0]

    def _make_slave_docs(self, names: list[str], rows: dict[str, Any],
                         running_builds: list[BuildInfo],
                         recent: dict[int, dict[str, list[int]]]) -> dict[str, Any]:
        queries.load_build_details(self.conn, running_builds)
        running: dict[str, list[BuildInfo]] = {}
        for b in running_builds:
            if b.slave is not None:
                running.setdefault(b.slave, []).append(b)
        out = {}
        for name, info in queries.slave_infos(names, rows).items():
            out[name] = jsondocs.slave_doc(
                info, running.get(name, []),
                recent.get(info.id, {}) if info.id is not None else {},
                self.cfg.builders_for_slave(name), self.buildbot_url)
        return out


# -- nodes ---------------------------------------------------------------------------------------

class Node:
    """A resource of the tree. Subclasses override what they have."""

    title = "Buildbot JSON"
    help_text = ""

    def child(self, req: JsonRequest, segment: str) -> Node | None:
        return None

    def child_names(self, req: JsonRequest) -> list[str]:
        """Children to list on the help page (may be a sample for unbounded children)."""
        return []

    def document(self, req: JsonRequest) -> Any:
        raise NotImplementedError

    def prefetch(self, req: JsonRequest, segments: list[str]) -> None:
        """Load what ``child(segment)`` will need for all these segments in one batch."""


def _parse_number(segment: str) -> int | None:
    return int(segment) if _NUMBER.fullmatch(segment) else None


class RootNode(Node):
    title = "Buildbot JSON"
    help_text = ("JSON status of this Buildbot: its builders and their builds, the slaves, "
                 "the change sources, project-wide settings and master metrics. Every node "
                 "of the tree has a help page like this one, at the node's URL followed by "
                 "/help.")
    CHILDREN = ("builders", "change_sources", "metrics", "project", "slaves")

    def child(self, req: JsonRequest, segment: str) -> Node | None:
        node_class = _ROOT_CHILDREN.get(segment)
        return node_class() if node_class is not None else None

    def child_names(self, req: JsonRequest) -> list[str]:
        return list(self.CHILDREN)

    def document(self, req: JsonRequest) -> Any:
        return {name: self.child(req, name).document(req)  # type: ignore[union-attr]
                for name in self.CHILDREN}


class ProjectNode(Node):
    title = "Project"
    help_text = "Project-wide settings."

    def document(self, req: JsonRequest) -> Any:
        return {"title": req.cfg.title, "titleURL": req.cfg.titleURL,
                "buildbotURL": req.cfg.buildbotURL}


class ChangeSourcesNode(Node):
    title = "Change sources"
    help_text = "Describe a change source."

    def document(self, req: JsonRequest) -> Any:
        return {str(i): jsondocs.change_source_doc(src)
                for i, src in enumerate(req.cfg.change_sources)}


class MetricsNode(Node):
    title = "Metrics"
    help_text = ("Master metrics. null unless c['metrics'] is set; then 'counters' holds "
                 "values read from the status database (changes.latest_number, "
                 "builds.started, builds.running, buildrequests.pending, slaves.connected, "
                 "slaves.configured, events.latest_id) and 'alarms' holds attached_slaves "
                 "([level, 'connected/configured']).")

    def document(self, req: JsonRequest) -> Any:
        if req.cfg.metrics is None:
            return None
        counters = queries.master_counters(req.conn, req.cfg)
        connected, configured = counters["slaves.connected"], counters["slaves.configured"]
        level = "OK" if connected >= configured else "WARN"
        return {"counters": counters,
                "alarms": {"attached_slaves": [level, f"{connected}/{configured}"]}}


class BuildersNode(Node):
    title = "Builders"
    help_text = "List of all the builders defined on a master."

    def child(self, req: JsonRequest, segment: str) -> Node | None:
        builder = req.builder(segment)
        return BuilderNode(builder) if builder is not None else None

    def child_names(self, req: JsonRequest) -> list[str]:
        return list(req.cfg.builders)

    def prefetch(self, req: JsonRequest, segments: list[str]) -> None:
        req.summaries(segments)

    def document(self, req: JsonRequest) -> Any:
        return req.all_builder_docs()


class BuilderNode(Node):
    title = "Builder"
    help_text = "Describe a single builder."

    def __init__(self, builder: BuilderInfo) -> None:
        self.builder = builder
        self.title = f"Builder {builder.name}"

    def child(self, req: JsonRequest, segment: str) -> Node | None:
        if segment == "builds":
            return BuildsNode(self.builder)
        if segment == "slaves":
            return BuilderSlavesNode(self.builder)
        if segment == "pendingBuilds":
            return PendingBuildsNode(self.builder)
        return None

    def child_names(self, req: JsonRequest) -> list[str]:
        return ["builds", "pendingBuilds", "slaves"]

    def document(self, req: JsonRequest) -> Any:
        return req.builder_docs([self.builder.name])[self.builder.name]


class BuildsNode(Node):
    title = "Builds"
    help_text = "Builds that were run on a builder."
    SAMPLE = 5  # build numbers listed as children on the help page

    def __init__(self, builder: BuilderInfo) -> None:
        self.builder = builder
        self.title = f"Builds of {builder.name}"

    def child(self, req: JsonRequest, segment: str) -> Node | None:
        if segment == "_all":
            return AllBuildsNode(self.builder)
        number = _parse_number(segment)
        if number is None:
            return None
        build = req.build(self.builder, number)
        return BuildNode(build) if build is not None else None

    def child_names(self, req: JsonRequest) -> list[str]:
        last = self.builder.next_number
        return ["_all"] + [str(n) for n in range(last - 1, max(last - 1 - self.SAMPLE, -1), -1)]

    def prefetch(self, req: JsonRequest, segments: list[str]) -> None:
        numbers = [n for n in map(_parse_number, segments) if n is not None]
        if numbers:
            req.builds(self.builder, numbers)

    def document(self, req: JsonRequest) -> Any:
        return {str(n): None for n in queries.build_numbers(req.conn, self.builder.id)}


class AllBuildsNode(BuildsNode):
    title = "All builds"
    help_text = ("All the builds that were run on a builder: the newest 'max' builds "
                 "(default: the build cache size), keyed by number.")

    def __init__(self, builder: BuilderInfo) -> None:
        super().__init__(builder)
        self.title = f"All builds of {builder.name}"

    def child(self, req: JsonRequest, segment: str) -> Node | None:
        if segment == "_all":
            return None
        return super().child(req, segment)

    def child_names(self, req: JsonRequest) -> list[str]:
        return super().child_names(req)[1:]

    def document(self, req: JsonRequest) -> Any:
        return {str(b.number): req.build_doc(b)
                for b in req.latest_builds(self.builder, req.max_value)}


class BuildNode(Node):
    title = "Build"
    help_text = "Describe a single build."

    def __init__(self, build: BuildInfo) -> None:
        self.build = build
        self.title = f"Build {build.builder} #{build.number}"

    def child(self, req: JsonRequest, segment: str) -> Node | None:
        if segment in ("steps", "source_stamp") and not self.build.details_loaded:
            req.ensure_details()
        if segment == "steps":
            return StepsNode(self.build)
        if segment == "source_stamp":
            return SourceStampNode(self.build.sourcestamps[0] if self.build.sourcestamps
                                   else None)
        return None

    def child_names(self, req: JsonRequest) -> list[str]:
        return ["source_stamp", "steps"]

    def document(self, req: JsonRequest) -> Any:
        return req.build_doc(self.build)


class StepsNode(Node):
    title = "Build steps"
    help_text = "A list of build steps that occurred during a build."

    def __init__(self, build: BuildInfo) -> None:
        self.build = build

    def child(self, req: JsonRequest, segment: str) -> Node | None:
        if _NUMBER.fullmatch(segment):
            # as in 0.8, an index may count from the end: steps/-1 is the last step
            index = int(segment)
            if -len(self.build.steps) <= index < len(self.build.steps):
                return StepNode(self.build, index % len(self.build.steps))
            return None
        for index, step in enumerate(self.build.steps):
            if step.name == segment:
                return StepNode(self.build, index)
        return None

    def child_names(self, req: JsonRequest) -> list[str]:
        return [s.name for s in self.build.steps]

    def document(self, req: JsonRequest) -> Any:
        return {str(i): jsondocs.step_doc(self.build, s, req.buildbot_url)
                for i, s in enumerate(self.build.steps)}


class StepNode(Node):
    title = "Build step"
    help_text = "A single build step."

    def __init__(self, build: BuildInfo, index: int) -> None:
        self.build = build
        self.step = build.steps[index]
        self.title = f"Step {self.step.name}"

    def document(self, req: JsonRequest) -> Any:
        return jsondocs.step_doc(self.build, self.step, req.buildbot_url)


class SourceStampNode(Node):
    title = "Source stamp"
    help_text = "Describe the sources for a SourceStamp."

    def __init__(self, ss: SourceStampInfo | None) -> None:
        self.ss = ss

    def child(self, req: JsonRequest, segment: str) -> Node | None:
        if segment == "changes":
            return ChangesNode(self.ss.changes if self.ss else [])
        return None

    def child_names(self, req: JsonRequest) -> list[str]:
        return ["changes"]

    def document(self, req: JsonRequest) -> Any:
        return jsondocs.sourcestamp_doc(self.ss) if self.ss else None


class ChangesNode(Node):
    title = "Changes"
    help_text = "List of changes."

    def __init__(self, changes: list[ChangeInfo]) -> None:
        self.changes = changes

    def child(self, req: JsonRequest, segment: str) -> Node | None:
        for change in self.changes:
            if str(change.number) == segment:
                return ChangeNode(change)
        return None

    def child_names(self, req: JsonRequest) -> list[str]:
        return [str(c.number) for c in self.changes]

    def document(self, req: JsonRequest) -> Any:
        return {str(c.number): jsondocs.change_doc(c) for c in self.changes}


class ChangeNode(Node):
    title = "Change"
    help_text = "Describe a single change that originates from a change source."

    def __init__(self, change: ChangeInfo) -> None:
        self.change = change
        self.title = f"Change #{change.number}"

    def document(self, req: JsonRequest) -> Any:
        return jsondocs.change_doc(self.change)


class SlavesNode(Node):
    title = "Slaves"
    help_text = "List the registered slaves."

    def names(self, req: JsonRequest) -> list[str]:
        return list(req.cfg.slaves)

    def child(self, req: JsonRequest, segment: str) -> Node | None:
        return SlaveNode(segment) if segment in self.names(req) else None

    def child_names(self, req: JsonRequest) -> list[str]:
        return self.names(req)

    def prefetch(self, req: JsonRequest, segments: list[str]) -> None:
        names = self.names(req)
        req.slave_docs([s for s in segments if s in names])

    def document(self, req: JsonRequest) -> Any:
        return req.all_slave_docs()


class BuilderSlavesNode(SlavesNode):
    title = "Builder slaves"
    help_text = "Describe the slaves attached to a single builder."

    def __init__(self, builder: BuilderInfo) -> None:
        self.builder = builder
        self.title = f"Slaves of {builder.name}"

    def names(self, req: JsonRequest) -> list[str]:
        return list(req.cfg.builders[self.builder.name].slavenames)

    def document(self, req: JsonRequest) -> Any:
        return req.slave_docs(self.names(req))


class SlaveNode(Node):
    title = "Slave"
    help_text = "Describe a slave."

    def __init__(self, name: str) -> None:
        self.name = name
        self.title = f"Slave {name}"

    def document(self, req: JsonRequest) -> Any:
        return req.slave_docs([self.name])[self.name]


class PendingBuildsNode(Node):
    title = "Pending builds"
    help_text = "Describe pending builds for a builder."

    def __init__(self, builder: BuilderInfo) -> None:
        self.builder = builder
        self.title = f"Pending builds of {builder.name}"

    def document(self, req: JsonRequest) -> Any:
        return [jsondocs.build_request_doc(r, req.buildbot_url)
                for r in queries.pending_build_requests(req.conn, self.builder)]


_ROOT_CHILDREN: dict[str, type[Node]] = {
    "builders": BuildersNode, "change_sources": ChangeSourcesNode, "metrics": MetricsNode,
    "project": ProjectNode, "slaves": SlavesNode,
}


# -- paths and select ----------------------------------------------------------------------------

def resolve(req: JsonRequest, node: Node, segments: list[str]) -> Node | None:
    """Walk ``segments`` (already unquoted) down from ``node``; None if any is unknown."""
    for segment in segments:
        child = node.child(req, segment)
        if child is None:
            return None
        node = child
    return node


def split_select(value: str) -> list[str]:
    """A ``select`` value's path segments: stripped of ``/`` at both ends, split, and each
    segment unquoted once more (so ``%252F`` selects a name containing ``/``)."""
    return [unquote(s) for s in value.strip("/").split("/") if s]


def prefetch_paths(req: JsonRequest, node: Node, paths: list[list[str]]) -> None:
    """Let every node on the way batch-load the children the paths will ask for."""
    firsts = [p[0] for p in paths if p]
    if not firsts:
        return
    node.prefetch(req, firsts)
    groups: dict[str, list[list[str]]] = {}
    for p in paths:
        if p:
            groups.setdefault(p[0], []).append(p[1:])
    for segment, rest in groups.items():
        if any(rest):
            child = node.child(req, segment)
            if child is not None:
                prefetch_paths(req, child, rest)


def _merge(target: dict[str, Any], doc: Any) -> None:
    """Merge a document into an output object without losing what more specific selects
    (processed first) put there. A kept (encoded) document is decoded where something
    must be merged into it, never changed in place."""
    if isinstance(doc, RawDoc):
        doc = doc.value()
    if not isinstance(doc, dict):
        return
    for key, value in doc.items():
        existing = target.get(key)
        if isinstance(existing, RawDoc) and isinstance(value, dict | RawDoc):
            existing = target[key] = existing.value()
        if isinstance(existing, dict) and isinstance(value, dict | RawDoc):
            _merge(existing, value)
        elif key not in target:
            target[key] = value


def select_document(req: JsonRequest, node: Node, values: list[str]) -> dict[str, Any]:
    """The ``select`` flag: a document assembled from sub-paths, the
    longest paths first; an empty value merges the node's own document."""
    items = sorted(values, key=lambda v: v.strip("/").count("/"), reverse=True)
    paths = [split_select(v) for v in items]
    prefetch_paths(req, node, paths)
    data: dict[str, Any] = {}
    for segments in paths:
        target = data
        current: Node | None = node
        for segment in segments:
            current = current.child(req, segment) if current is not None else None
            nested = target.get(segment)
            if isinstance(nested, RawDoc):
                nested = target[segment] = nested.value()
            if not isinstance(nested, dict):
                nested = {}
                target[segment] = nested
            target = nested
            if current is None:
                break
        if current is None:
            target.clear()
            target.update(NOT_AVAILABLE)
        else:
            doc = current.document(req)
            if isinstance(doc, RawDoc) and target is not data and not target:
                # nothing to merge with: the kept document goes in as it is
                _replace(data, segments, doc)
            elif isinstance(doc, dict | RawDoc):
                _merge(target, doc)
            elif target is not data and not target:
                # a list (pendingBuilds) or null: replace the empty placeholder
                _replace(data, segments, doc)
    return data


def _replace(data: dict[str, Any], segments: list[str], value: Any) -> None:
    target = data
    for segment in segments[:-1]:
        target = target[segment]
    target[segments[-1]] = value
