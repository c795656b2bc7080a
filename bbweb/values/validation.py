"""What a value must be to enter the status database, and how a stored one is shown.

Everything a user can send ends up as text in the database and on pages: change fields and
properties from every change-hook dialect (built in or third-party), ``bbweb sendchange``,
pollers, and the force form. Two kinds of value pass JSON and Python but break later:

* text that cannot be stored or rendered: a NUL character (PostgreSQL refuses it in a text
  column; SQLite stores it, so a site moving to PostgreSQL would be stuck) and an unpaired
  surrogate (a JSON ``"\\ud800"`` escape gives a Python string that no UTF-8 page can be
  encoded from);
* values nested so deeply that decoding or rendering them runs out of Python's recursion
  limit, and values so large that every page showing them becomes slow.

Python's json module decodes and encodes recursively, and where a deep value fails depends
on how deep the stack already is (the same property may be stored fine by a change hook and
fail later when a worker claims the build), so every depth here is measured iteratively:
:func:`depth` for a decoded value, :func:`text_depth` for JSON text before decoding it.

:func:`check_change`, :func:`check_properties` and :func:`check_text` refuse these where
they enter (:class:`ValueRefused`, a ``ValueError`` naming the field, which the change-hook
framework and the force form answer with a 4xx). Rows stored before these checks existed
are not refused but shown: :func:`displayable` turns a decoded value into one every page
can render (surrogates become U+FFFD, subtrees deeper than :data:`MAX_ENTRY_DEPTH` become
:data:`TOO_DEEP`); the status layer's decoder uses it for every JSON column it reads. The
engine, which hands stored values on to builds and workers, decodes them with
:func:`decode_stored`: repaired where a repair loses nothing a build needs, else refused
with the reason, never a ``RecursionError``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

# Depths count lists and objects: one directly in the property is level 1. Two limits, for
# two questions:
#
# Deepest nesting of a property value that may *enter* now (change hooks, sendchange, the
# force form) and that pages show before cutting it off. Real properties are a few levels
# deep; rendering needs a Python stack frame or more per level, and the interpreter stops
# at about 1,000.
MAX_ENTRY_DEPTH = 32
# Deepest nesting the engine still *carries*: what it decodes from a stored row and passes
# between master and worker (a build's properties, a step's results). Rows stored before
# the entry check existed may be deeper than MAX_ENTRY_DEPTH and still build as they did;
# this bound is far less than what json's recursion takes even from deep inside a request.
MAX_CARRIED_DEPTH = 100
# Deepest nesting of a whole request document (a webhook payload, a JSON body): room for
# a property of MAX_ENTRY_DEPTH inside it; real payloads are under ten levels deep.
MAX_DOCUMENT_DEPTH = 2 * MAX_ENTRY_DEPTH
# Largest property value, JSON-encoded (a value this big is already unreadable on a page).
MAX_PROPERTY_BYTES = 64 * 1024
# Latest ``when`` (5000-01-01) a page can show; later or non-finite times break date code.
MAX_EPOCH = 95_617_584_000
# What a stored subtree deeper than MAX_ENTRY_DEPTH is shown as.
TOO_DEEP = "[nested too deeply to show]"
REPLACEMENT = "\ufffd"

log = logging.getLogger("bbweb.engine")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
CHANGE_TEXT_FIELDS = ("author", "comments", "revision", "branch", "category", "revlink",
                      "repository", "project", "codebase", "src")


class ValueRefused(ValueError):
    """A value that cannot be stored as given; the message names the field (never the
    value, which may be anything the request carried)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem


def label(name: Any) -> str:
    """A user-supplied name as it may appear in an error message: quoted when it is a
    plain identifier, else a neutral word (so a message never reflects arbitrary input)."""
    return repr(name) if isinstance(name, str) and _SAFE_NAME.match(name) else "(unnamed)"


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored and shown, or None."""
    if "\x00" in text:
        return "has a NUL character"
    if _SURROGATES.search(text):
        return "has an unpaired surrogate (a JSON \\ud800-\\udfff escape)"
    return None


def check_text(field: str, value: Any) -> None:
    """Refuse a string field that cannot be stored (non-strings are left to the caller)."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise ValueRefused(field, problem)


def check_value(field: str, value: Any) -> None:
    """Refuse a property value that is not plain JSON of bounded depth and size and
    storable text. Walks iteratively, so no depth can exhaust the stack here."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(field, item)
        elif item is None or isinstance(item, bool | int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueRefused(field, "has a number that is not finite")
        elif isinstance(item, list | tuple | dict):
            if depth >= MAX_ENTRY_DEPTH:
                raise ValueRefused(field, f"is nested more than {MAX_ENTRY_DEPTH} levels deep")
            if isinstance(item, dict):
                for key, sub in item.items():
                    if not isinstance(key, str):
                        raise ValueRefused(field, "has an object key that is not a string")
                    check_text(field, key)
                    stack.append((sub, depth + 1))
            else:
                stack.extend((sub, depth + 1) for sub in item)
        else:
            raise ValueRefused(field, f"is not a JSON value ({type(item).__name__})")
    size = len(json.dumps(value))  # safe now: depth is bounded
    if size > MAX_PROPERTY_BYTES:
        raise ValueRefused(field, f"is larger than {MAX_PROPERTY_BYTES} bytes as JSON")


def depth(value: Any, limit: int | None = None) -> int:
    """How deeply lists, tuples and objects nest in ``value`` (0 for a scalar). With a
    ``limit`` it stops once the depth exceeds it and returns ``limit + 1``, so a
    pathological value costs little."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        level += 1
        if limit is not None and level > limit:
            return limit + 1
        deepest = max(deepest, level)
        stack.extend((child, level) for child in children)
    return deepest


def text_depth(text: str) -> int:
    """How deeply JSON ``text`` nests (0 for a scalar), counting brackets outside strings,
    without decoding it. Works on any text; it does not validate it."""
    level = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            deepest = max(deepest, level)
        elif ch in "]}":
            level -= 1
    return deepest


def loads(data: str | bytes, what: str = "the payload") -> Any:
    """``json.loads`` of a request document, refused (:class:`ValueRefused`) when nested
    more than :data:`MAX_DOCUMENT_DEPTH` deep, whether or not the decoder itself ran out of
    stack. Other decoding errors are the decoder's ``ValueError``s."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValueRefused(what, "is nested too deeply") from None
    if isinstance(value, list | dict) and depth(value) > MAX_DOCUMENT_DEPTH:
        raise ValueRefused(what, f"is nested more than {MAX_DOCUMENT_DEPTH} levels deep")
    return value


def check_properties(properties: Mapping[Any, Any], what: str = "property") -> None:
    """Names (non-empty, storable strings) and values (:func:`check_value`)."""
    for name, value in properties.items():
        if not isinstance(name, str) or not name:
            raise ValueRefused(f"{what} names", "must be non-empty strings")
        check_text(f"{what} name {label(name)}", name)
        check_value(f"{what} {label(name)}", value)


def check_change(change: Any) -> None:
    """Every field of a :class:`~bbweb.engine.changes.ChangeInput`: text fields, file
    names, properties and ``when``."""
    for name in CHANGE_TEXT_FIELDS:
        check_text(repr(name), getattr(change, name, None))
    files = getattr(change, "files", None)
    if isinstance(files, list):
        for f in files:
            check_text("'files'", f)
    properties = getattr(change, "properties", None)
    if isinstance(properties, Mapping):
        check_properties(properties)
    when = getattr(change, "when", None)
    if when is not None and not isinstance(when, bool):
        try:
            seconds = float(when)
        except (TypeError, ValueError, OverflowError):
            raise ValueRefused("'when'", "must be a number of seconds since the epoch") \
                from None
        if not math.isfinite(seconds) or abs(seconds) > MAX_EPOCH:
            raise ValueRefused("'when'", "must be a finite number of seconds since the "
                                         "epoch before the year 5000")


# -- showing what is already stored ----------------------------------------------------------

def _clean_text(text: str, problems: list[str]) -> str:
    if _SURROGATES.search(text):
        if "unpaired surrogate" not in problems:
            problems.append("unpaired surrogate")
        return _SURROGATES.sub(REPLACEMENT, text)
    return text


def displayable(value: Any, limit: int = MAX_ENTRY_DEPTH) -> tuple[Any, list[str]]:
    """``value`` (decoded JSON) made safe to render: unpaired surrogates in strings and keys
    replaced by U+FFFD, anything nested deeper than ``limit`` replaced by :data:`TOO_DEEP`.
    Returns (value, what was replaced); the value is returned as it is when nothing needed
    replacing. Iterative, like :func:`check_value`."""
    problems: list[str] = []

    def leaf(item: Any) -> Any:
        return _clean_text(item, problems) if isinstance(item, str) else item

    if not isinstance(value, list | dict):
        cleaned = leaf(value)
        return cleaned, problems
    root: list[Any] = [None]
    # (source container, destination container, key in destination, depth of source)
    stack: list[tuple[Any, list[Any] | dict[str, Any], Any, int]] = [(value, root, 0, 1)]
    while stack:
        src, dest, key, level = stack.pop()
        if level > limit:
            if "nested too deeply" not in problems:
                problems.append("nested too deeply")
            dest[key] = TOO_DEEP
            continue
        if isinstance(src, dict):
            out: dict[str, Any] = {}
            dest[key] = out
            for k, sub in src.items():
                k = _clean_text(k, problems) if isinstance(k, str) else k
                if isinstance(sub, list | dict):
                    out[k] = None
                    stack.append((sub, out, k, level + 1))
                else:
                    out[k] = leaf(sub)
        else:
            items: list[Any] = [None] * len(src)
            dest[key] = items
            for i, sub in enumerate(src):
                if isinstance(sub, list | dict):
                    stack.append((sub, items, i, level + 1))
                else:
                    items[i] = leaf(sub)
    return (root[0], problems) if problems else (value, problems)


def may_need_cleaning(text: str, limit: int = MAX_ENTRY_DEPTH) -> bool:
    """Whether stored JSON ``text`` could decode to something :func:`displayable` would
    change: it has a surrogate (escaped or not) or more brackets than ``limit``. False
    for nearly every row, which is then decoded without the walk."""
    if "\\ud" in text or "\\uD" in text or _SURROGATES.search(text):
        return True
    return text.count("[") + text.count("{") > limit


def decode_stored(text: str | None, what: str, limit: int = MAX_CARRIED_DEPTH) -> Any:
    """A stored JSON column as the engine uses it (to build, to hand to a worker).

    Rows stored by older versions, before values were checked where they enter, may hold
    what the engine cannot carry. Text that is not JSON, or nests deeper than ``limit``
    (measured before decoding, so the decoder never runs out of stack), is refused with
    :class:`ValueRefused` naming ``what``; unpaired surrogates are replaced by U+FFFD and
    logged, since a worker could not pass them to a command anyway."""
    if text is None:
        raise ValueRefused(what, "is missing")
    if text.count("[") + text.count("{") > limit:
        levels = text_depth(text)
        if levels > limit:
            raise ValueRefused(what, f"nests {levels} levels deep, more than the "
                                     f"{limit} allowed")
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueRefused(what, "is not valid JSON") from None
    if may_need_cleaning(text, limit):
        value, problems = displayable(value, limit)
        if problems:
            log.warning("%s is used repaired (%s): it was stored before such values were "
                        "refused", what, ", ".join(problems))
    return value


def decode_stored_or(text: str | None, default: Any, what: str,
                     limit: int = MAX_CARRIED_DEPTH) -> Any:
    """:func:`decode_stored`, or ``default`` (with the reason logged) for a refused row: for
    columns the engine can do without, like the words of a step's text."""
    try:
        return decode_stored(text, what, limit)
    except ValueRefused as exc:
        log.warning("%s; used as %r instead", exc, default)
        return default
