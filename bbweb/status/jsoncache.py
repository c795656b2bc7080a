"""Build documents of ``/json`` kept encoded, per web process, and the encoder that splices
them into an answer.

Most of what a page of builds cost was turning rows into a document and the document into
JSON text, for builds that had not changed since the last request. A :class:`BuildDocCache`
keeps each build's document as its compact JSON text, stamped with everything of the build
that the database can say cheaply: the build's row (read anyway, to find the build) and its
``doc_version``, which database triggers raise on every change to the build's steps, logs
and properties, whoever writes them (the daemon, another web process, a worker's report).
A stamp that differs from the row just read means the document is rebuilt; so a kept
document is never served after its build changed, in any process. Sourcestamps and changes
are never rewritten once stored, so they need no stamp.

The cache is per process (each gunicorn worker its own), bounded in bytes, and shared by
the threads of the process (a dict, changed only by single assignments under a lock).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from bbweb.status.records import BuildInfo

# the encoding every cached text and every answer of /json uses when compact
_COMPACT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), check_circular=False)
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


class RawDoc:
    """A document held as its compact JSON text (sorted keys, no whitespace). The value is
    decoded again only where an answer needs it as data (``filter``, indentation, a
    ``select`` that merges into it)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def value(self) -> Any:
        return json.loads(self.text)

    def __repr__(self) -> str:
        return f"RawDoc({self.text[:40]!r}…)"


def plain(value: Any) -> Any:
    """``value`` with every :class:`RawDoc` in it decoded (for code that walks data)."""
    if isinstance(value, RawDoc):
        return value.value()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _raw_value(obj: Any) -> Any:
    if isinstance(obj, RawDoc):
        return obj.value()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps(data: Any, *, compact: bool = True, spliced: bool = True) -> str:
    """JSON text of ``data`` with sorted keys (compact, or indented by 2), in which each
    :class:`RawDoc` is its text spliced in as it is when compact. ``spliced=False`` says
    ``data`` holds none (it is then not walked to look for them)."""
    if not compact:
        return json.dumps(data, sort_keys=True, indent=2, check_circular=False,
                          default=_raw_value)
    return _compact(data) if spliced else _COMPACT.encode(data)


def _compact(data: Any) -> str:
    if isinstance(data, RawDoc):
        return data.text
    if isinstance(data, dict) and data and _holds_raw(data):
        if all(type(k) is str for k in data):
            return "{" + ",".join(_COMPACT.encode(k) + ":" + _compact(data[k])
                                  for k in sorted(data)) + "}"
        return json.dumps(data, sort_keys=True, separators=(",", ":"), check_circular=False,
                          default=_raw_value)
    return _COMPACT.encode(data)


def _holds_raw(data: dict[str, Any]) -> bool:
    """Whether a RawDoc is among the values of ``data`` or of the objects in it (a select
    answer nests them by path: only objects are walked, never lists)."""
    for value in data.values():
        if isinstance(value, RawDoc):
            return True
        if isinstance(value, dict) and value and _holds_raw(value):
            return True
    return False


def build_stamp(build: BuildInfo, buildbot_url: str | None) -> tuple[Any, ...]:
    """What a build's document depends on besides its immutable sourcestamps: the row's
    columns, the triggers' version of its steps, logs and properties, and the URL prefix
    of its log links."""
    return (build.builderid, build.builder, build.number, build.slave, build.reason,
            build.started_at, build.finished_at, build.results, build.text,
            build.doc_version, buildbot_url)


class BuildDocCache:
    """Build id -> (stamp, compact text), least recently used dropped first beyond
    ``max_bytes`` of text."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._docs: OrderedDict[int, tuple[tuple[Any, ...], RawDoc]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._docs)

    def get(self, build: BuildInfo, buildbot_url: str | None) -> RawDoc | None:
        """The kept document of ``build`` if it was made from the same stamp."""
        entry = self._docs.get(build.id)
        if entry is None or entry[0] != build_stamp(build, buildbot_url):
            return None
        with self._lock:
            if build.id in self._docs:
                self._docs.move_to_end(build.id)
        return entry[1]

    def put(self, build: BuildInfo, buildbot_url: str | None, doc: Any) -> RawDoc:
        """Encode ``doc`` (the build's document) and keep it under the build's stamp."""
        raw = RawDoc(_COMPACT.encode(doc))
        size = len(raw.text)
        if size > self.max_bytes:
            return raw
        with self._lock:
            old = self._docs.pop(build.id, None)
            if old is not None:
                self._bytes -= len(old[1].text)
            self._docs[build.id] = (build_stamp(build, buildbot_url), raw)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._docs.popitem(last=False)
                self._bytes -= len(dropped.text)
        return raw


class MadeDocCache:
    """Documents of ``/json`` made from a few rows (the builders' list, the slaves'),
    kept encoded per process with the rows they were made from: kind -> (inputs, text).

    A request still reads the rows (so it sees every writer's change, in any process),
    and compares them with the kept inputs: equal inputs make the same document, so its
    kept text is answered instead of building the document and encoding it again.
    ``inputs`` must be everything the document depends on besides the process's
    configuration (which a process never changes)."""

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._docs: OrderedDict[Any, tuple[Any, RawDoc]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._docs)

    def get(self, kind: Any, inputs: Any) -> RawDoc | None:
        """The kept document of ``kind`` if it was made from equal ``inputs``."""
        entry = self._docs.get(kind)
        if entry is None or entry[0] != inputs:
            return None
        return entry[1]

    def put(self, kind: Any, inputs: Any, doc: Any) -> RawDoc:
        """Encode ``doc``, made from ``inputs``, and keep it as the document of ``kind``."""
        raw = RawDoc(_COMPACT.encode(doc))
        with self._lock:
            self._docs.pop(kind, None)
            self._docs[kind] = (inputs, raw)
            while len(self._docs) > self.max_entries:
                self._docs.popitem(last=False)
        return raw
