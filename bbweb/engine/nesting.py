"""How deeply a JSON value nests, measured without recursion.

Python's json module decodes and encodes recursively: a value nested a few hundred levels
deep raises RecursionError, and where it does depends on how deep the stack already is —
the same property may be stored fine by a change hook and fail later when a worker claims
the build. The worker protocol therefore measures properties first, with these iterative
functions, and refuses a value nested deeper than :data:`MAX_PROPERTY_DEPTH` with a clear
message instead of failing somewhere in the middle of a claim.
"""

from __future__ import annotations

from typing import Any

# Far more than any real property needs, far less than what json's recursion can take even
# from deep inside a web request.
MAX_PROPERTY_DEPTH = 100


def json_text_depth(text: str) -> int:
    """The nesting depth of JSON ``text`` (0 for a scalar), counting brackets outside
    strings. Works on any text; it does not validate it."""
    depth = deepest = 0
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
            depth += 1
            if depth > deepest:
                deepest = depth
        elif ch in "]}":
            depth -= 1
    return deepest


def value_depth(value: Any, limit: int = MAX_PROPERTY_DEPTH) -> int:
    """The nesting depth of a decoded value (0 for a scalar); stops counting once it
    exceeds ``limit`` (and then returns ``limit + 1``), so a pathological value costs
    little."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        depth += 1
        if depth > limit:
            return limit + 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest
