"""Storing changes and handing them to the schedulers.

A change arrives from a hook dialect (or ``bbweb sendchange``) as a plain dict with the
field names of Buildbot 0.8's base hook; ``add_change`` stores it, emits ``change.new``
and runs the immediate schedulers in the same transaction, so an accepted change is never
lost between "stored" and "scheduled".
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from sqlalchemy.engine import Connection

from bbweb.db.connection import insert_ids
from bbweb.db.schema import change_files, change_properties, changes
from bbweb.engine import events
from bbweb.engine.change_rows import change_dict
from bbweb.engine.schedulers import on_new_changes
from bbweb.mastercfg.master import MasterConfig
from bbweb.values.validation import ValueRefused, check_change


class ChangeError(ValueError):
    """A change that cannot be stored as given (the hook answers 400 with this text)."""


@dataclass
class ChangeInput:
    """A change as a dialect produces it (Buildbot's documented base-hook field names)."""

    author: str
    comments: str = ""
    files: list[str] = field(default_factory=list)
    revision: str | None = None
    when: float | None = None
    branch: str | None = None
    category: str | None = None
    revlink: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    repository: str = ""
    project: str = ""
    codebase: str = ""
    src: str | None = None
    is_dir: bool = False

    def validate(self) -> None:
        if not isinstance(self.author, str) or not self.author.strip():
            raise ChangeError("a change needs an author (the 'author' or 'who' field)")
        if not isinstance(self.files, list) or not all(isinstance(f, str) for f in self.files):
            raise ChangeError("'files' must be a list of file names")
        if not isinstance(self.properties, dict):
            raise ChangeError("'properties' must be a JSON object of name -> value")
        for text_field in ("comments", "repository", "project", "codebase"):
            value = getattr(self, text_field)
            if value is None:
                setattr(self, text_field, "")
            elif not isinstance(value, str):
                raise ChangeError(f"{text_field!r} must be a string")
        if self.when is not None:
            try:
                self.when = float(self.when)
            except (TypeError, ValueError):
                raise ChangeError("'when' must be a number of seconds since the epoch")
        for name in self.properties:
            if not isinstance(name, str) or not name:
                raise ChangeError("property names must be non-empty strings")
        try:  # storable text, bounded depth and size: the same rules for every source
            check_change(self)
        except ValueRefused as exc:
            raise ChangeError(str(exc)) from None


_INSERT_FILES = change_files.insert()
_INSERT_PROPERTIES = change_properties.insert()


def add_change(conn: Connection, cfg: MasterConfig, change: ChangeInput,
               now: float | None = None) -> int:
    """Store one change, emit ``change.new`` and let the schedulers act on it."""
    return add_changes(conn, cfg, [change], now)[0]


def add_changes(conn: Connection, cfg: MasterConfig, new: list[ChangeInput],
                now: float | None = None, *, validated: bool = False) -> list[int]:
    """Store the changes (in the given order, which is the order of their ids), emit
    ``change.new`` for each and let the schedulers see each in turn; returns their ids.

    All of it happens in the caller's transaction and is written in bulk: one insert for
    the changes, one for all their files, one for all their properties, one per table for
    the buildsets the schedulers make, and the events in one block. The schedulers see
    each change as if it had come alone (each stored change is visible to them, and what
    they keep waiting or take for a build is settled before the next one is looked at),
    so a push of N commits schedules exactly what N single changes would.
    ``validated``: the caller has run each change's ``validate()`` already (outside the
    transaction), so it is not run again while the write lock is held."""
    if not new:
        return []
    if not validated:
        for change in new:
            change.validate()
    now = time.time() if now is None else now
    rows = [{
        "author": change.author.strip(), "comments": change.comments or "",
        "is_dir": bool(change.is_dir), "branch": change.branch or None,
        "revision": change.revision or None, "revlink": change.revlink or None,
        "when_timestamp": float(change.when) if change.when is not None else now,
        "category": change.category or None, "repository": change.repository or "",
        "codebase": change.codebase or "", "project": change.project or "",
        "src": change.src,
    } for change in new]
    with events.batch(conn):
        ids = insert_ids(conn, changes, rows)
        files = [{"changeid": changeid, "filename": f}
                 for changeid, change in zip(ids, new, strict=True) for f in change.files]
        if files:
            conn.execute(_INSERT_FILES, files)
        props = [{"changeid": changeid, "name": k, "value": json.dumps(v), "source": "Change"}
                 for changeid, change in zip(ids, new, strict=True)
                 for k, v in change.properties.items()]
        if props:
            conn.execute(_INSERT_PROPERTIES, props)
        for changeid, row, change in zip(ids, rows, new, strict=True):
            events.emit(conn, "change.new", changeid=changeid, branch=row["branch"],
                        revision=row["revision"], author=change.author)
        on_new_changes(conn, cfg, [
            change_dict(SimpleNamespace(changeid=changeid, **row), list(change.files),
                        dict(change.properties))
            for changeid, row, change in zip(ids, rows, new, strict=True)], now=now)
    return ids
