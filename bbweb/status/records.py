"""The read side's records: plain dataclasses the status queries return.

They carry Buildbot's vocabulary (builder, build number, slave, step, log, sourcestamp,
change) and no database handle, so pages, the JSON API and notifiers can pass them around
freely. Produced by :mod:`bbweb.status.queries`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bbweb.values.numbers import in_int_range

Property = tuple[str, Any, str]  # (name, value, source), Buildbot's Properties.asList() item


@dataclass
class BuilderInfo:
    """A row of the builders table. ``next_number`` is the number the next build gets, so
    the latest started build is ``next_number - 1`` (none when it is 0)."""

    id: int
    name: str
    category: str | None
    builddir: str
    next_number: int
    active: bool

    def resolve_number(self, number: int) -> int | None:
        """Buildbot's ``getBuild(n)`` numbering: ``n >= 0`` is absolute, ``-1`` the latest
        started build, ``-2`` the one before… None when that cannot exist."""
        if number < 0:
            number = self.next_number + number
        if number < 0 or number >= self.next_number or not in_int_range(number):
            return None
        return number


@dataclass
class BuilderSummary:
    """What a builder is doing now (the builder's JSON document and box on pages)."""

    name: str
    category: str | None
    basedir: str
    slavenames: list[str]
    schedulers: list[str]
    current_builds: list[int]
    pending: int
    state: str  # "offline" | "building" | "idle"
    connected_slaves: list[str]
    next_number: int


@dataclass
class ChangeInfo:
    number: int
    author: str
    comments: str
    branch: str | None
    revision: str | None
    revlink: str | None
    when: float
    category: str | None
    repository: str
    codebase: str
    project: str
    src: str | None
    is_dir: bool
    files: list[str] = field(default_factory=list)
    properties: list[Property] = field(default_factory=list)  # sorted by name


@dataclass
class PatchInfo:
    level: int | None
    body: str
    subdir: str | None
    author: str | None
    comment: str | None


@dataclass
class SourceStampInfo:
    id: int
    branch: str | None
    revision: str | None
    repository: str
    project: str
    codebase: str
    patch: PatchInfo | None = None
    changes: list[ChangeInfo] = field(default_factory=list)


@dataclass
class LogInfo:
    id: int
    name: str
    num_chunks: int
    num_bytes: int
    complete: bool


@dataclass
class StepInfo:
    id: int
    buildid: int
    number: int
    name: str
    started_at: float | None
    finished_at: float | None
    results: int | None
    text: list[str]
    urls: dict[str, str]
    statistics: dict[str, Any]
    hidden: bool
    logs: list[LogInfo] = field(default_factory=list)

    @property
    def is_started(self) -> bool:
        return self.started_at is not None

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None


@dataclass
class BuildInfo:
    """One build. ``steps``, ``properties`` and ``sourcestamps`` are filled by
    :func:`load_build_details` (empty until then; ``details_loaded`` tells)."""

    id: int
    builderid: int
    builder: str
    number: int
    buildrequestid: int
    slave: str | None
    reason: str
    started_at: float
    finished_at: float | None
    results: int | None
    text: list[str]
    stop_requested: str | None
    # raised by the database whenever the build's steps, logs or properties change
    doc_version: int = 0
    steps: list[StepInfo] = field(default_factory=list)
    properties: list[Property] = field(default_factory=list)  # sorted by name
    sourcestamps: list[SourceStampInfo] = field(default_factory=list)
    details_loaded: bool = False

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None

    @property
    def blame(self) -> list[str]:
        """The responsible users: distinct authors of the build's changes, sorted."""
        return sorted({c.author for ss in self.sourcestamps for c in ss.changes})

    @property
    def current_step(self) -> StepInfo | None:
        for step in self.steps:
            if step.is_started and not step.is_finished:
                return step
        return None

    @property
    def logs(self) -> list[tuple[StepInfo, LogInfo]]:
        return [(s, lg) for s in self.steps for lg in s.logs]


@dataclass
class SlaveInfo:
    """A configured slave with what the database knows about it (``id`` is None for a
    slave that never connected)."""

    id: int | None
    name: str
    info: dict[str, Any]
    connected: bool
    last_seen: float | None
    connected_at: float | None
    paused: bool
    graceful: bool

    @property
    def host(self) -> Any:
        return self.info.get("host")

    @property
    def admin(self) -> Any:
        return self.info.get("admin")

    @property
    def version(self) -> Any:
        return self.info.get("version")

    @property
    def access_uri(self) -> Any:
        return self.info.get("access_uri")


@dataclass
class BuildRequestInfo:
    """An unclaimed build request (a "pending build")."""

    id: int
    buildsetid: int
    builder: str
    priority: int
    submitted_at: float
    reason: str
    properties: list[Property] = field(default_factory=list)  # buildset's, sorted by name
    sourcestamps: list[SourceStampInfo] = field(default_factory=list)
    builds: list[BuildInfo] = field(default_factory=list)  # earlier attempts (retries)
