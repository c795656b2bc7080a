"""Build result codes, named and numbered as Buildbot 0.8 did (JSON clients rely on them)."""

from __future__ import annotations

from typing import overload

SUCCESS = 0
WARNINGS = 1
FAILURE = 2
SKIPPED = 3
EXCEPTION = 4
RETRY = 5
CANCELLED = 6

Results = ["success", "warnings", "failure", "skipped", "exception", "retry", "cancelled"]


@overload
def worst_status(a: int, b: int | None) -> int: ...
@overload
def worst_status(a: int | None, b: int) -> int: ...
@overload
def worst_status(a: None, b: None) -> None: ...


def worst_status(a: int | None, b: int | None) -> int | None:
    """Combine two results the way a build combines its steps.

    SKIPPED never makes a build worse than SUCCESS; otherwise the numerically higher of
    SUCCESS/WARNINGS/FAILURE/EXCEPTION/RETRY/CANCELLED wins (Buildbot's ordering).
    """
    if a is None:
        return b
    if b is None:
        return a
    order = [SKIPPED, SUCCESS, WARNINGS, FAILURE, EXCEPTION, RETRY, CANCELLED]
    return a if order.index(a) >= order.index(b) else b


def result_name(result: int | None) -> str:
    """The lower-case word Buildbot used (``"success"``…); running builds have none."""
    if result is None or not 0 <= result < len(Results):
        return "unknown"
    return Results[result]
