"""Schedulers and change filters: which changes start which builders, and when.

The objects here only decide; ``bbweb.engine.schedulers`` turns their decisions into
buildsets inside the change's own transaction (immediate schedulers) or from the daemon's
timers (``treeStableTimer``, ``Nightly``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from bbweb.mastercfg import forcefields as ff
from bbweb.mastercfg.errors import Location, argument_error, caller_location

NOT_SET = object()  # distinguishes "branch=None" (the default branch) from "not given"


def _as_list(value: Any) -> list[Any] | None:
    if value is None or value is NOT_SET:
        return None
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return [value]


class ChangeFilter:
    """Match changes by branch, project, repository, category or codebase.

    Each attribute takes a value or list (``branch=["master", None]``), a regular
    expression (``branch_re``) or a function (``branch_fn``); ``filter_fn`` sees the
    whole change. Every given criterion must match.
    """

    ATTRS = ("branch", "project", "repository", "category", "codebase")

    def __init__(self, filter_fn: Callable[[Any], bool] | None = None, **kwargs: Any) -> None:
        self.location: Location | None = caller_location()
        self.filter_fn = filter_fn
        self.checks: list[tuple[str, str, Any]] = []
        for key, value in kwargs.items():
            attr, _, kind = key.partition("_")
            if attr not in self.ATTRS or kind not in ("", "re", "fn"):
                argument_error(f"ChangeFilter: unknown argument {key!r}")
                continue
            if kind == "re":
                if value is None:
                    continue
                try:
                    pattern = re.compile(value) if isinstance(value, str) else value
                except re.error as exc:
                    argument_error(f"ChangeFilter: {key} is not a valid regular expression: "
                                   f"{exc}")
                    continue
                if not callable(getattr(pattern, "match", None)):
                    argument_error(f"ChangeFilter: {key} must be a regular expression")
                    continue
                self.checks.append((attr, "re", pattern))
            elif kind == "fn":
                if value is None:
                    continue
                if not callable(value):
                    argument_error(f"ChangeFilter: {key} must be callable")
                    continue
                self.checks.append((attr, "fn", value))
            else:
                if value is NOT_SET:
                    continue
                self.checks.append((attr, "eq", _as_list(value) or [None]))
        if filter_fn is not None and not callable(filter_fn):
            argument_error("ChangeFilter: filter_fn must be callable")
            self.filter_fn = None

    def filter_change(self, change: Mapping[str, Any]) -> bool:
        """True if the change (a dict with Buildbot's attribute names) passes."""
        for attr, kind, spec in self.checks:
            value = change.get(attr)
            if kind == "eq":
                if value not in spec:
                    return False
            elif kind == "re":
                if value is None or not spec.match(value):
                    return False
            elif not spec(value):
                return False
        if self.filter_fn is not None:
            return bool(self.filter_fn(_ChangeView(change)))
        return True


class _ChangeView:
    """Attribute access on a change dict, as Buildbot's filter functions expect."""

    def __init__(self, change: Mapping[str, Any]) -> None:
        self._change = change

    def __getattr__(self, name: str) -> Any:
        try:
            return self._change[name]
        except KeyError:
            raise AttributeError(name) from None


class BaseScheduler:
    """Options every scheduler shares."""

    kind = "base"
    needs_builders = True  # False for schedulers that may list no builder (ForceScheduler)

    def __init__(self, name: str, builderNames: list[str], properties: dict | None = None,
                 codebases: Any = None, reason: str | None = None, **unknown: Any) -> None:
        if unknown:
            argument_error(f"{type(self).__name__} {name!r}: unknown argument(s) "
                           f"{', '.join(sorted(unknown))}")
        self.location: Location | None = caller_location()
        if not isinstance(name, str) or not name:
            argument_error(f"{type(self).__name__}: name must be a non-empty string")
        if isinstance(builderNames, str):
            builderNames = [builderNames]
        if not isinstance(builderNames, list | tuple) or not all(
                isinstance(b, str) for b in builderNames):
            argument_error(f"scheduler {name!r}: builderNames must be a list of builder names")
            builderNames = []
        elif not builderNames and self.needs_builders:
            argument_error(f"scheduler {name!r} has no builderNames")
        if properties is not None and not isinstance(properties, dict):
            argument_error(f"scheduler {name!r}: properties must be a dict")
            properties = None
        self.name = name
        self.builderNames = list(builderNames)
        self.properties = dict(properties or {})
        self.codebases = codebases
        self.reason = reason

    def listBuilderNames(self) -> list[str]:
        return list(self.builderNames)


class _ChangeScheduler(BaseScheduler):
    """Schedulers driven by changes (single branch or any branch)."""

    def __init__(self, name: str, builderNames: list[str], change_filter: Any = None,
                 treeStableTimer: int | None = None, fileIsImportant: Any = None,
                 onlyImportant: bool = False, categories: Any = None, **kwargs: Any) -> None:
        super().__init__(name, builderNames, **kwargs)
        if treeStableTimer is not None and (not isinstance(treeStableTimer, int | float)
                                            or isinstance(treeStableTimer, bool)
                                            or treeStableTimer < 0):
            argument_error(f"scheduler {name!r}: treeStableTimer must be a number of "
                           "seconds or None")
            treeStableTimer = None
        if fileIsImportant is not None and not callable(fileIsImportant):
            argument_error(f"scheduler {name!r}: fileIsImportant must be callable")
            fileIsImportant = None
        if change_filter is not None and not isinstance(change_filter, ChangeFilter):
            if callable(change_filter):
                change_filter = ChangeFilter(filter_fn=change_filter)
            else:
                argument_error(f"scheduler {name!r}: change_filter must be a ChangeFilter")
                change_filter = None
        self.change_filter = change_filter
        self.treeStableTimer = treeStableTimer
        self.fileIsImportant = fileIsImportant
        self.onlyImportant = onlyImportant
        self.categories = _as_list(categories)

    def wants_change(self, change: Mapping[str, Any]) -> bool:
        if self.categories is not None and change.get("category") not in self.categories:
            return False
        return self.change_filter is None or self.change_filter.filter_change(change)

    def is_important(self, change: Mapping[str, Any]) -> bool:
        if self.fileIsImportant is None:
            return True
        return bool(self.fileIsImportant(_ChangeView(change)))

    def group_key(self, change: Mapping[str, Any]) -> Any:
        """Changes with the same key are built together after the tree is stable."""
        return None


class SingleBranchScheduler(_ChangeScheduler):
    """Build one branch: give ``branch`` (None = the default branch) or ``change_filter``."""

    kind = "single_branch"

    def __init__(self, name: str, builderNames: list[str] | None = None,
                 branch: Any = NOT_SET, change_filter: Any = None, **kwargs: Any) -> None:
        if branch is not NOT_SET and change_filter is not None:
            argument_error(f"SingleBranchScheduler {name!r}: give branch or change_filter, "
                           "not both")
        if branch is NOT_SET and change_filter is None:
            argument_error(f"SingleBranchScheduler {name!r}: the branch argument (None for "
                           "the default branch) or a change_filter is required")
        if branch is not NOT_SET:
            change_filter = ChangeFilter(branch=branch)
        super().__init__(name, builderNames or [], change_filter=change_filter, **kwargs)
        self.branch = None if branch is NOT_SET else branch


Scheduler = SingleBranchScheduler  # Buildbot's older name


class AnyBranchScheduler(_ChangeScheduler):
    """Build every branch (or those in ``branches``); each branch gets its own buildset."""

    kind = "any_branch"

    def __init__(self, name: str, builderNames: list[str] | None = None,
                 branches: Any = NOT_SET, change_filter: Any = None, **kwargs: Any) -> None:
        if branches is not NOT_SET and change_filter is not None:
            argument_error(f"AnyBranchScheduler {name!r}: give branches or change_filter, "
                           "not both")
        if branches is not NOT_SET and branches is not None:
            change_filter = ChangeFilter(branch=_as_list(branches))
        super().__init__(name, builderNames or [], change_filter=change_filter, **kwargs)

    def group_key(self, change: Mapping[str, Any]) -> Any:
        return (change.get("codebase") or "", change.get("project") or "",
                change.get("repository") or "", change.get("branch"))


class ForceScheduler(BaseScheduler):
    """Builds started from the web force form: who, why, the sources of each codebase and
    properties, each a parameter from :mod:`bbweb.mastercfg.forcefields` that renders one
    form field and validates what is submitted."""

    kind = "force"
    needs_builders = False

    def __init__(self, name: str, builderNames: list[str], reason: Any = None,
                 username: Any = None, branch: Any = None, revision: Any = None,
                 repository: Any = None, project: Any = None, properties: Any = None,
                 codebases: Any = None, reasonString: str = "A build was forced by '%(owner)s'"
                 ": %(reason)s", buttonName: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, builderNames, codebases=codebases, **kwargs)

        def param(value: Any, default: ff.BaseParameter, what: str) -> Any:
            if value is None:
                return default
            if value is False:
                return False
            if isinstance(value, ff.BaseParameter):
                return value
            argument_error(f"ForceScheduler {name!r}: {what} must be a parameter "
                           "(e.g. StringParameter) or False")
            return default

        self.reason_param = param(reason, ff.StringParameter(
            "reason", label="reason", default="force build", size=20), "reason")
        if self.reason_param is False:
            self.reason_param = ff.FixedParameter("reason", default="")
        self.username_param = param(username, ff.UserNameParameter(), "username") or None
        self.branch_param = branch
        self.revision_param = revision
        self.repository_param = repository
        self.project_param = project
        self.codebase_params = ff.default_codebases(branch, revision, repository, project,
                                                    codebases)
        if properties is None:
            properties = [ff.AnyPropertyParameter(f"property{i}") for i in range(1, 5)]
        if not isinstance(properties, list | tuple) or not all(
                isinstance(p, ff.BaseParameter) for p in properties):
            argument_error(f"ForceScheduler {name!r}: properties must be a list of parameters")
            properties = []
        self.property_params = list(properties)
        for p in [self.reason_param, *self.codebase_params, *self.property_params]:
            p.set_prefix("")
        if self.username_param:
            self.username_param.set_prefix("")
        self.reasonString = reasonString
        self.buttonName = buttonName or "Force Build"

    def parse_form(self, form: Any, owner: str | None, validation: Any = None) -> Any:
        """A :class:`~bbweb.mastercfg.forcefields.ForceRequest` from the submitted form
        (``form``: name -> list of values); raises ``ValidationError``."""
        return ff.collect_force_request(self.username_param, self.reason_param,
                                        self.codebase_params, self.property_params, form,
                                        owner, validation)


_CRON_FIELDS = {
    "minute": (0, 59),
    "hour": (0, 23),
    "dayOfMonth": (1, 31),
    "month": (1, 12),
    "dayOfWeek": (0, 6),  # Buildbot: 0 = Monday
}


def _cron_values(field: str, value: Any) -> set[int] | None:
    """None means 'every'."""
    lo, hi = _CRON_FIELDS[field]
    if value == "*" or value is None:
        return None
    values = value if isinstance(value, list | tuple | set) else [value]
    out: set[int] = set()
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            argument_error(f"Nightly: {field} must be '*' or integers in {lo}..{hi}, "
                           f"got {v!r}")
            continue
        out.add(v)
    return out


class Nightly(BaseScheduler):
    """Build at times given cron-style (``minute``, ``hour``, ``dayOfMonth``, ``month``,
    ``dayOfWeek`` with 0 = Monday), optionally only if the branch changed."""

    kind = "nightly"

    def __init__(self, name: str, builderNames: list[str], minute: Any = 0, hour: Any = "*",
                 dayOfMonth: Any = "*", month: Any = "*", dayOfWeek: Any = "*",
                 branch: Any = None, onlyIfChanged: bool = False, change_filter: Any = None,
                 fileIsImportant: Any = None, **kwargs: Any) -> None:
        super().__init__(name, builderNames, **kwargs)
        self.minute = _cron_values("minute", minute)
        self.hour = _cron_values("hour", hour)
        self.dayOfMonth = _cron_values("dayOfMonth", dayOfMonth)
        self.month = _cron_values("month", month)
        self.dayOfWeek = _cron_values("dayOfWeek", dayOfWeek)
        self.branch = branch
        self.onlyIfChanged = onlyIfChanged
        if change_filter is not None and not isinstance(change_filter, ChangeFilter):
            if callable(change_filter):
                change_filter = ChangeFilter(filter_fn=change_filter)
            else:
                argument_error(f"Nightly {name!r}: change_filter must be a ChangeFilter")
                change_filter = None
        self.change_filter = change_filter or ChangeFilter(branch=branch)
        self.fileIsImportant = fileIsImportant

    def matches(self, t: Any) -> bool:
        """Does the local time ``t`` (a datetime) fall on this schedule's minute?"""
        checks = ((self.minute, t.minute), (self.hour, t.hour),
                  (self.dayOfMonth, t.day), (self.month, t.month),
                  (self.dayOfWeek, t.weekday()))
        return all(allowed is None or v in allowed for allowed, v in checks)

    def wants_change(self, change: Mapping[str, Any]) -> bool:
        return self.change_filter.filter_change(change)


class Periodic(BaseScheduler):
    """Build every ``periodicBuildTimer`` seconds (the first time when the daemon first
    sees it), on ``branch``."""

    kind = "periodic"

    def __init__(self, name: str, builderNames: list[str], periodicBuildTimer: int | float = 0,
                 branch: Any = None, **kwargs: Any) -> None:
        super().__init__(name, builderNames, **kwargs)
        if not isinstance(periodicBuildTimer, int | float) or isinstance(
                periodicBuildTimer, bool) or periodicBuildTimer <= 0:
            argument_error(f"Periodic {name!r}: periodicBuildTimer must be a positive "
                           "number of seconds")
        self.periodicBuildTimer = periodicBuildTimer
        self.branch = branch
