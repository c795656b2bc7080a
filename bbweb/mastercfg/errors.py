"""Configuration errors that point at the line of master.cfg the user has to fix."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where in master.cfg an object was created (filename, line)."""

    filename: str
    lineno: int

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}"


# The file currently being executed by the loader; objects created while it runs record
# the line that created them so later validation errors can name it.
_config_files: list[str] = []


def push_config_file(path: str) -> None:
    _config_files.append(os.path.abspath(path))


def pop_config_file() -> None:
    _config_files.pop()


def caller_location() -> Location | None:
    """The innermost stack frame that belongs to the config file being loaded.

    Recorded by config objects' constructors; None when built outside master.cfg (tests,
    Python API users), in which case errors carry no line.
    """
    if not _config_files:
        return None
    wanted = set(_config_files)
    frame = inspect.currentframe()
    try:
        while frame is not None:
            fname = os.path.abspath(frame.f_code.co_filename)
            if fname in wanted:
                return Location(fname, frame.f_lineno)
            frame = frame.f_back
    finally:
        del frame
    return None


class ConfigErrors(Exception):
    """One or more problems found in a configuration, each with its location if known."""

    def __init__(self, errors: list[str] | None = None) -> None:
        self.errors: list[str] = list(errors or [])
        super().__init__("\n".join(self.errors))

    def add(self, message: str, location: Location | None = None) -> None:
        self.errors.append(f"{location}: {message}" if location else message)
        self.args = ("\n".join(self.errors),)

    def extend(self, other: ConfigErrors) -> None:
        """Add the (already located) messages of another set of errors."""
        self.errors.extend(other.errors)
        self.args = ("\n".join(self.errors),)

    def __bool__(self) -> bool:
        return bool(self.errors)


def config_error(message: str) -> None:
    """Raise a single configuration error at the caller's line in master.cfg.

    For problems after which the caller cannot go on. A bad constructor argument should
    use :func:`argument_error`, so that one ``bbweb checkconfig`` run lists every bad
    argument of the file instead of the first.
    """
    errs = ConfigErrors()
    errs.add(message, caller_location())
    raise errs


# Where argument_error() records problems while master.cfg is executed (innermost last).
_collectors: list[ConfigErrors] = []


@contextmanager
def collecting_errors(errors: ConfigErrors) -> Iterator[ConfigErrors]:
    """While the block runs, :func:`argument_error` adds to ``errors`` instead of raising."""
    _collectors.append(errors)
    try:
        yield errors
    finally:
        _collectors.remove(errors)


def argument_error(message: str) -> None:
    """Report a bad argument of a configuration object at the caller's line in master.cfg.

    While master.cfg is being loaded the problem is recorded and the constructor carries
    on with a harmless fallback for that argument, so the rest of the file is checked too
    and the user sees every mistake at once (Buildbot's ``config.error`` worked this way).
    Outside loading (objects built by Python code or tests) it raises
    :class:`ConfigErrors` at once. Callers must therefore be able to continue after it.
    """
    if _collectors:
        _collectors[-1].add(message, caller_location())
        return
    config_error(message)
