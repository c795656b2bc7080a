"""Renderables: values in step arguments that are filled from build properties at run time.

``Property``, ``Interpolate`` and ``WithProperties`` follow Buildbot's documented syntax so
existing master.cfg files render the same commands.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from bbweb.mastercfg.errors import argument_error


class RenderContext:
    """What a renderable may look at: build properties and the build's source stamp."""

    def __init__(self, properties: Mapping[str, Any],
                 sourcestamps: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.properties = dict(properties)
        # codebase -> {"branch":…, "revision":…, "repository":…, "project":…, "codebase":…}
        self.sourcestamps = dict(sourcestamps or {})

    def has(self, name: str) -> bool:
        return name in self.properties

    def get(self, name: str, default: Any = None) -> Any:
        return self.properties.get(name, default)


class Renderable:
    """Base class for values rendered against a :class:`RenderContext`."""

    def render(self, ctx: RenderContext) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


def render(value: Any, ctx: RenderContext) -> Any:
    """Render renderables anywhere inside lists, tuples and dicts; leave the rest alone."""
    if isinstance(value, Renderable):
        return value.render(ctx)
    if isinstance(value, list | tuple):
        return type(value)(render(v, ctx) for v in value)
    if isinstance(value, dict):
        return {render(k, ctx): render(v, ctx) for k, v in value.items()}
    return value


class Property(Renderable):
    """The value of one property, or ``default`` when it is unset (or empty, if
    ``defaultWhenFalse``)."""

    def __init__(self, key: str, default: Any = None, defaultWhenFalse: bool = True) -> None:
        if not isinstance(key, str):
            argument_error("Property() needs the property name as a string")
        self.key = key
        self.default = default
        self.defaultWhenFalse = defaultWhenFalse

    def render(self, ctx: RenderContext) -> Any:
        if self.defaultWhenFalse:
            value = ctx.get(self.key)
            return value if value else render(self.default, ctx)
        return ctx.get(self.key) if ctx.has(self.key) else render(self.default, ctx)

    def __repr__(self) -> str:
        return f"Property({self.key!r})"


_INTERP_RE = re.compile(r"%\(([^)]*)\)([sdr])")


def _lookup_selector(selector: str, ctx: RenderContext, kwargs: Mapping[str, Any]
                     ) -> tuple[bool, Any]:
    """Resolve ``prop:NAME``, ``src:CODEBASE:ATTR`` or ``kw:NAME``: (is_set, value)."""
    if selector.startswith("prop:"):
        name = selector[5:]
        return ctx.has(name), ctx.get(name)
    if selector.startswith("src:"):
        parts = selector[4:].split(":", 1)
        if len(parts) != 2:
            raise ValueError(f"bad src selector {selector!r}")
        codebase, attr = parts
        ss = ctx.sourcestamps.get(codebase)
        if ss is None or attr not in ss:
            return False, None
        return True, ss[attr]
    if selector.startswith("kw:"):
        name = selector[3:]
        return name in kwargs, kwargs.get(name)
    raise ValueError(f"unknown Interpolate selector {selector!r}")


def _split_selector(expr: str) -> tuple[str, str | None, str]:
    """Split ``prop:name:-default`` into (``prop:name``, ``-``, ``default``)."""
    if expr.startswith("src:"):
        # src:CODEBASE:ATTR[:op...]
        parts = expr.split(":", 3)
        base = ":".join(parts[:3])
        rest = parts[3] if len(parts) > 3 else None
    else:
        parts = expr.split(":", 2)
        base = ":".join(parts[:2])
        rest = parts[2] if len(parts) > 2 else None
    if rest is None or rest == "":
        return base, None, ""
    return base, rest[0], rest[1:]


class Interpolate(Renderable):
    """``Interpolate("%(prop:branch)s-%(src::revision:-HEAD)s")``.

    Supported conditionals after the key: ``:-x`` (x if unset), ``:~x`` (x if unset or
    false), ``:+x`` (x if set, else empty), ``:?|a|b`` and ``:#?|a|b`` (a if set/true, else b).
    """

    def __init__(self, fmtstring: str, *args: Any, **kwargs: Any) -> None:
        if not isinstance(fmtstring, str):
            argument_error("Interpolate() needs a format string")
            fmtstring = ""
        if args and kwargs:
            argument_error("Interpolate() takes either positional or keyword arguments, "
                           "not both")
        self.fmtstring = fmtstring
        self.args = args
        self.kwargs = kwargs
        for m in _INTERP_RE.finditer(fmtstring):
            base, _op, _arg = _split_selector(m.group(1))
            if not base.startswith(("prop:", "src:", "kw:")):
                argument_error(f"Interpolate: unknown selector in %({m.group(1)})s "
                               "(use prop:, src: or kw:)")

    def _expand(self, expr: str, ctx: RenderContext) -> Any:
        base, op, arg = _split_selector(expr)
        kwargs = {k: render(v, ctx) for k, v in self.kwargs.items()}
        is_set, value = _lookup_selector(base, ctx, kwargs)
        if op is None:
            return value if is_set and value is not None else ""
        if op == "-":
            return value if is_set else arg
        if op == "~":
            return value if is_set and value else arg
        if op == "+":
            return arg if is_set else ""
        if op in ("?", "#"):
            if op == "#":
                arg = arg[1:] if arg.startswith("?") else arg
                truth = bool(is_set and value)
            else:
                truth = is_set
            if not arg:
                raise ValueError(f"bad conditional in %({expr})s")
            delim = arg[0]
            pieces = arg[1:].split(delim)
            if len(pieces) != 2:
                raise ValueError(f"bad conditional in %({expr})s")
            return pieces[0] if truth else pieces[1]
        raise ValueError(f"unknown operator {op!r} in %({expr})s")

    def render(self, ctx: RenderContext) -> str:
        def sub(m: re.Match[str]) -> str:
            value = self._expand(m.group(1), ctx)
            return repr(value) if m.group(2) == "r" else str(value)

        text = _INTERP_RE.sub(sub, self.fmtstring)
        if self.args:
            text = text % tuple(render(a, ctx) for a in self.args)
        return text

    def __repr__(self) -> str:
        return f"Interpolate({self.fmtstring!r})"


class _PropDict(Mapping[str, Any]):
    """Mapping view used by ``WithProperties`` dictionary-style interpolation."""

    def __init__(self, ctx: RenderContext, lambdas: Mapping[str, Any]) -> None:
        self.ctx = ctx
        self.lambdas = lambdas

    def __getitem__(self, key: str) -> Any:
        if key in self.lambdas:
            return self.lambdas[key](self.ctx.properties)
        name, op, arg = key, None, ""
        for candidate in (":-", ":~", ":+"):
            if candidate in key:
                name, arg = key.split(candidate, 1)
                op = candidate[1]
                break
        is_set = self.ctx.has(name)
        value = self.ctx.get(name)
        if op is None:
            if not is_set:
                raise KeyError(f"property {name!r} is not set")
            return value
        if op == "-":
            return value if is_set else arg
        if op == "~":
            return value if is_set and value else arg
        return arg if is_set else ""

    def __iter__(self) -> Iterator[str]:
        return iter(self.ctx.properties)

    def __len__(self) -> int:
        return len(self.ctx.properties)


class WithProperties(Renderable):
    """The older spelling: ``WithProperties("%s", "branch")`` or
    ``WithProperties("%(branch)s-%(revision:-HEAD)s")``."""

    def __init__(self, fmtstring: str, *args: str, **lambdas: Any) -> None:
        if args and lambdas:
            argument_error("WithProperties takes either positional names or keyword "
                           "functions")
        for k, fn in lambdas.items():
            if not callable(fn):
                argument_error(f"WithProperties: keyword argument {k!r} must be callable")
        self.fmtstring = fmtstring
        self.args = args
        self.lambdas = lambdas

    def render(self, ctx: RenderContext) -> str:
        if self.args:
            values = tuple("" if ctx.get(a) is None else ctx.get(a) for a in self.args)
            return self.fmtstring % values
        return self.fmtstring % _PropDict(ctx, self.lambdas)

    def __repr__(self) -> str:
        return f"WithProperties({self.fmtstring!r})"
