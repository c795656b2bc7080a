"""Build factories and the steps they hold.

Steps are descriptions here: the master renders them against the build's properties and
hands them to a worker one at a time (see ``bbweb.engine.builds``), then judges the
result with the flags below exactly as Buildbot's documentation describes them.
"""

from __future__ import annotations

import shlex
from typing import Any

from bbweb.mastercfg.errors import Location, argument_error, caller_location
from bbweb.mastercfg.properties import Renderable, RenderContext, render

DEFAULT_TIMEOUT = 1200


def _as_text_list(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str | Renderable) for v in value):
        return list(value)
    argument_error(f"{what} must be a string or a list of strings")
    return None


def _env_value(value: Any) -> str | None:
    """A step ``env`` value as the worker receives it: lists are joined with ``:`` (a
    search path, as on a Buildbot slave); None removes the variable."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return ":".join(str(v) for v in value)
    return str(value)


class BuildStep:
    """Common options of every step (Buildbot's names)."""

    step_type = "shell"
    default_name = "step"

    def __init__(
        self,
        name: str | None = None,
        description: str | list[str] | None = None,
        descriptionDone: str | list[str] | None = None,
        haltOnFailure: bool = False,
        flunkOnFailure: bool = True,
        flunkOnWarnings: bool = False,
        warnOnFailure: bool = False,
        warnOnWarnings: bool = True,
        alwaysRun: bool = False,
        doStepIf: Any = True,
        hideStepIf: Any = False,
        workdir: str | Renderable | None = None,
        timeout: int | None = DEFAULT_TIMEOUT,
        maxTime: int | None = None,
        env: dict[str, Any] | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            argument_error(f"{type(self).__name__}: unknown argument(s) "
                           f"{', '.join(sorted(unknown))}")
        self.location: Location | None = caller_location()
        if name is not None and not isinstance(name, str):
            argument_error(f"{type(self).__name__}: name must be a string")
            name = None
        self.name = name
        self.description = _as_text_list(description, "description")
        self.descriptionDone = _as_text_list(descriptionDone, "descriptionDone")
        self.haltOnFailure = bool(haltOnFailure)
        self.flunkOnFailure = bool(flunkOnFailure)
        self.flunkOnWarnings = bool(flunkOnWarnings)
        self.warnOnFailure = bool(warnOnFailure)
        self.warnOnWarnings = bool(warnOnWarnings)
        self.alwaysRun = bool(alwaysRun)
        self.doStepIf = doStepIf
        self.hideStepIf = hideStepIf
        self.workdir = workdir
        for label, value in (("timeout", timeout), ("maxTime", maxTime)):
            if value is not None and (not isinstance(value, int | float)
                                      or isinstance(value, bool) or value <= 0):
                argument_error(f"{type(self).__name__}: {label} must be a positive number "
                               "of seconds or None")
        self.timeout = timeout
        self.maxTime = maxTime
        if env is not None and not isinstance(env, dict):
            argument_error(f"{type(self).__name__}: env must be a dict")
            env = None
        self.env = env or {}

    # -- what the master sends to the worker ------------------------------------------
    def step_name(self) -> str:
        return self.name or self.default_name

    def render_for_worker(self, ctx: RenderContext, default_workdir: str) -> dict[str, Any]:
        """The JSON the worker executes; renderables are resolved now, with the
        properties the build has at the moment the step starts."""
        return {
            "type": self.step_type,
            "workdir": render(self.workdir, ctx) or default_workdir,
            "env": {k: _env_value(v) for k, v in render(self.env, ctx).items()},
            "timeout": self.timeout,
            "maxTime": self.maxTime,
        }

    def describe(self, ctx: RenderContext, done: bool) -> list[str]:
        """Text shown on pages: ``description`` while running, ``descriptionDone`` after."""
        text = self.descriptionDone if done else self.description
        if text is None and done:
            text = self.description
        if text is None:
            text = [self.step_name()]
        return [str(t) for t in render(text, ctx)]

    def should_run(self, ctx: RenderContext) -> bool:
        flag = self.doStepIf
        if callable(flag):
            return bool(flag(ctx))
        return bool(flag)


class ShellCommand(BuildStep):
    """Run a command on the worker: a list is exec'd directly, a string goes to /bin/sh."""

    default_name = "shell"

    def __init__(self, command: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if command is None:
            argument_error(f"{type(self).__name__}: command is required")
        elif not isinstance(command, str | list | tuple | Renderable):
            argument_error(f"{type(self).__name__}: command must be a string or a list")
        self.command = command

    def step_name(self) -> str:
        if self.name:
            return self.name
        if type(self).default_name != "shell":
            return type(self).default_name
        return "shell"

    def render_for_worker(self, ctx: RenderContext, default_workdir: str) -> dict[str, Any]:
        spec = super().render_for_worker(ctx, default_workdir)
        command = render(self.command, ctx)
        if isinstance(command, tuple):
            command = list(command)
        if isinstance(command, list):
            command = [str(c) for c in command]
        spec["command"] = command
        return spec

    def describe(self, ctx: RenderContext, done: bool) -> list[str]:
        if self.description is None and self.descriptionDone is None and not self.name \
                and type(self).default_name == "shell":
            command = render(self.command, ctx)
            words = shlex.split(command) if isinstance(command, str) else [str(c)
                                                                             for c in command]
            head = " ".join(words[:2]) + (" ..." if len(words) > 2 else "")
            return [f"'{head}'"]
        return super().describe(ctx, done)


class Configure(ShellCommand):
    default_name = "configure"

    def __init__(self, command: Any = ("./configure",), **kwargs: Any) -> None:
        kwargs.setdefault("description", ["configuring"])
        kwargs.setdefault("descriptionDone", ["configure"])
        kwargs.setdefault("haltOnFailure", True)
        super().__init__(command=list(command) if isinstance(command, tuple) else command,
                         **kwargs)


class Compile(ShellCommand):
    default_name = "compile"

    def __init__(self, command: Any = ("make", "all"), **kwargs: Any) -> None:
        kwargs.setdefault("description", ["compiling"])
        kwargs.setdefault("descriptionDone", ["compile"])
        kwargs.setdefault("haltOnFailure", True)
        super().__init__(command=list(command) if isinstance(command, tuple) else command,
                         **kwargs)


class Test(ShellCommand):
    default_name = "test"

    def __init__(self, command: Any = ("make", "test"), **kwargs: Any) -> None:
        kwargs.setdefault("description", ["testing"])
        kwargs.setdefault("descriptionDone", ["test"])
        kwargs.setdefault("warnOnFailure", True)
        super().__init__(command=list(command) if isinstance(command, tuple) else command,
                         **kwargs)


class Git(BuildStep):
    """Check out a git repository into the work directory and set ``got_revision``."""

    step_type = "git"
    default_name = "git"
    MODES = ("incremental", "full")

    def __init__(self, repourl: str | Renderable | None = None, branch: Any = "HEAD",
                 mode: str = "incremental", method: str | None = None,
                 alwaysUseLatest: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("haltOnFailure", True)
        kwargs.setdefault("description", ["updating"])
        kwargs.setdefault("descriptionDone", ["update"])
        kwargs.setdefault("workdir", "build")
        super().__init__(**kwargs)
        if not repourl:
            argument_error("Git: repourl is required")
        if mode not in self.MODES:
            argument_error(f"Git: mode must be one of {', '.join(self.MODES)}, not {mode!r}")
        if method not in (None, "clean", "fresh", "clobber", "copy"):
            argument_error(f"Git: unknown method {method!r}")
        self.repourl = repourl
        self.branch = branch
        self.mode = mode
        self.method = method
        self.alwaysUseLatest = alwaysUseLatest

    def render_for_worker(self, ctx: RenderContext, default_workdir: str) -> dict[str, Any]:
        spec = super().render_for_worker(ctx, default_workdir)
        ss = ctx.sourcestamps.get("", {}) or next(iter(ctx.sourcestamps.values()), {})
        branch = ss.get("branch") or render(self.branch, ctx)
        revision = None if self.alwaysUseLatest else ss.get("revision")
        spec.update({
            "repourl": render(self.repourl, ctx),
            "branch": None if branch in (None, "", "HEAD") else branch,
            "revision": revision,
            "mode": "full" if self.mode == "full" and self.method != "copy" else self.mode,
        })
        return spec


class BuildFactory:
    """An ordered list of steps; ``addStep`` as in Buildbot."""

    def __init__(self, steps: list[BuildStep] | None = None) -> None:
        self.location = caller_location()
        self.steps: list[BuildStep] = []
        if steps is not None and not isinstance(steps, list | tuple):
            argument_error(f"BuildFactory() takes a list of steps, not {type(steps).__name__}")
            steps = None
        for step in steps or []:
            self.addStep(step)

    def addStep(self, step: BuildStep) -> None:
        if isinstance(step, type) and issubclass(step, BuildStep):
            argument_error("addStep() takes a step instance, e.g. ShellCommand(...), "
                           "not a class")
        elif not isinstance(step, BuildStep):
            argument_error(f"addStep() takes a build step, not {type(step).__name__}")
        else:
            self.steps.append(step)

    def addSteps(self, steps: list[BuildStep]) -> None:
        if not isinstance(steps, list | tuple):
            argument_error(f"addSteps() takes a list of steps, not {type(steps).__name__}")
            return
        for step in steps:
            self.addStep(step)
