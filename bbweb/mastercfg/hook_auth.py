"""The values WebStatus's ``change_hook_auth`` accepts, and the check master.cfg's loader
makes of one. The forms are listed in :mod:`bbweb.web.hook_auth`, which checks requests
against them.
"""

from __future__ import annotations

import re
from typing import Any

_KIND = re.compile(r"^([a-z]+):(.*)$", re.S)
_STRCRED_KINDS = ("memory", "file", "htpasswd")


def is_pair(value: Any) -> bool:
    return (isinstance(value, tuple | list) and len(value) == 2
            and all(isinstance(v, str) for v in value))


def entries(value: Any) -> list[Any]:
    """The configured value as a list of entries (a pair, or a string)."""
    if isinstance(value, tuple) and is_pair(value):
        return [value]
    if isinstance(value, str):
        return [value]
    return list(value)


def classify(item: str) -> tuple[str, str]:
    """('memory'|'file'|'htpasswd', rest) for a string entry; ('?', kind) if unknown."""
    m = _KIND.match(item)
    if m is None:
        return "htpasswd", item  # a bare path
    kind, rest = m.group(1), m.group(2)
    if kind in _STRCRED_KINDS:
        return kind, rest
    return "?", kind


def validate_hook_auth(value: Any) -> str | None:
    """A message saying what is wrong with a ``change_hook_auth`` value, or None."""
    if value is None:
        return None
    usage = ("change_hook_auth must be ('user', 'password'), a list of such pairs, an "
             "htpasswd file path, or a list of 'memory:…'/'file:…' strings")
    if not isinstance(value, str | list | tuple) or not value:
        return usage
    for item in entries(value):
        if is_pair(item):
            if not item[0]:
                return "change_hook_auth: a user name cannot be empty"
            continue
        if not isinstance(item, str):
            return (f"{usage} (credential checker objects are not supported; "
                    f"got {type(item).__name__})")
        kind, rest = classify(item)
        if kind == "memory":
            parts = rest.split(":")
            if len(parts) < 2 or len(parts) % 2:
                return f"change_hook_auth {item!r}: use memory:USER:PASS[:USER:PASS…]"
        elif kind in ("file", "htpasswd"):
            if not rest.strip():
                return f"change_hook_auth {item!r}: {kind}: needs a path"
        else:
            return (f"change_hook_auth {item!r}: unknown kind {rest!r} (memory, file or "
                    "htpasswd; a bare string is an htpasswd file path)")
    return None
