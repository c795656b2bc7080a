"""The ForceScheduler's form fields (Buildbot's ``forcesched`` parameters).

Each parameter knows how to show itself on the force form (``kind``, ``label``, ``size``,
``choices``…) and how to turn what the browser sent into a value, with the messages a
user sees when the value is wrong. The web form (``bbweb/web/actions_force.py``) renders
them; :func:`collect_force_request` reads a submitted form into one
:class:`ForceRequest` or raises :class:`ValidationError` — nothing is scheduled then.

Field names follow 0.8: a field in a named group is ``<group>_<name>`` (``cb_branch`` for
codebase ``cb``), in the anonymous group just ``<name>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bbweb.mastercfg.errors import argument_error

# c['validation']: what a forced build's branch, revision and property names and values
# must match (Buildbot's defaults; a config may replace any of them).
DEFAULT_VALIDATION = {
    "branch": r"^[\w.+/~-]*$",
    "revision": r"^[ \w\.\-\/]*$",
    "property_name": r"^[\w\.\-\/\~:]*$",
    "property_value": r"^[\w\.\-\/\~:]*$",
}
MAX_VALUE_LENGTH = 10_000  # a form value longer than this is refused, not stored


class ValidationError(ValueError):
    """A submitted force form value is wrong; the message is shown to the user."""


class BaseParameter:
    """One form field. ``regex`` (pattern or compiled) must match the whole value;
    ``required`` refuses blank values; ``hide`` keeps the field off the form."""

    kind = "text"
    default: Any = ""

    def __init__(self, name: str, label: str | None = None, default: Any = None,
                 required: bool = False, regex: Any = None, hide: bool = False,
                 size: int = 10, **unknown: Any) -> None:
        if unknown:
            argument_error(f"{type(self).__name__}({name!r}): unknown argument(s) "
                           f"{', '.join(sorted(unknown))}")
        if not isinstance(name, str):
            argument_error(f"{type(self).__name__}: name must be a string")
            name = str(name)
        if isinstance(regex, str):
            try:
                regex = re.compile(regex)
            except re.error as exc:
                argument_error(f"{type(self).__name__}({name!r}): regex is not a valid "
                               f"regular expression: {exc}")
                regex = None
        elif regex is not None and not callable(getattr(regex, "fullmatch", None)):
            argument_error(f"{type(self).__name__}({name!r}): regex must be a regular "
                           "expression")
            regex = None
        self.name = name
        self.label = name if label is None else label
        if default is not None:
            self.default = default
        self.required = required
        self.regex = regex
        self.hide = hide
        self.size = size
        self.fullName = name

    def set_prefix(self, prefix: str) -> None:
        self.fullName = f"{prefix}_{self.name}" if prefix else self.name

    def raw_value(self, form: Mapping[str, list[str]]) -> list[str]:
        return form.get(self.fullName, [])

    def parse(self, form: Mapping[str, list[str]]) -> Any:
        """The field's value from the submitted form (blank → default), validated."""
        values = self.raw_value(form)
        value = values[0] if values else ""
        if len(value) > MAX_VALUE_LENGTH:
            raise ValidationError(f"'{self.label}' is too long (at most "
                                  f"{MAX_VALUE_LENGTH} characters)")
        if value.strip() == "":
            if self.required:
                raise ValidationError(f"'{self.label}' needs to be specified")
            return self.default
        if self.regex is not None and not self.regex.fullmatch(value):
            raise ValidationError(f"{self.label}: '{value}' does not match pattern "
                                  f"'{self.regex.pattern}'")
        return self.convert(value)

    def convert(self, value: str) -> Any:
        return value


class FixedParameter(BaseParameter):
    """A value the user cannot change (not shown on the form)."""

    def __init__(self, name: str, default: Any = "", **kwargs: Any) -> None:
        kwargs.setdefault("hide", True)
        super().__init__(name, default=default, **kwargs)

    def parse(self, form: Mapping[str, list[str]]) -> Any:
        return self.default


class StringParameter(BaseParameter):
    """A one-line text field."""

    def __init__(self, name: str, length: int | None = None, **kwargs: Any) -> None:
        if length is not None:
            kwargs.setdefault("size", length)
        super().__init__(name, **kwargs)


class TextParameter(StringParameter):
    """A multi-line text area (``cols`` × ``rows``)."""

    kind = "textarea"

    def __init__(self, name: str, cols: int = 80, rows: int = 20, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.cols = cols
        self.rows = rows


class IntParameter(StringParameter):
    """An integer; anything else is a validation error (0.8 answered with a server
    error)."""

    kind = "int"
    default: Any = 0

    def convert(self, value: str) -> Any:
        try:
            return int(value.strip())
        except ValueError:
            raise ValidationError(f"'{self.label}' must be a whole number, not "
                                  f"'{value}'") from None


class BooleanParameter(BaseParameter):
    """A checkbox; a checked box is submitted as ``checkbox=<fullName>``."""

    kind = "bool"
    default: Any = False

    def parse(self, form: Mapping[str, list[str]]) -> Any:
        return self.fullName in form.get("checkbox", [])


class UserNameParameter(StringParameter):
    """The forcing user's name (hidden when the user is logged in)."""

    def __init__(self, name: str = "username", label: str = "Your name:",
                 size: int = 30, need_email: bool = True, **kwargs: Any) -> None:
        super().__init__(name, label=label, size=size, **kwargs)
        self.need_email = need_email

    def convert(self, value: str) -> Any:
        if self.need_email and not re.fullmatch(r"[^<>]+<[^<>@\s]+@[^<>\s]+>", value.strip()):
            raise ValidationError(f"{self.label} '{value}' must look like "
                                  "'Full Name <email@example.org>'")
        return value.strip()


class ChoiceStringParameter(BaseParameter):
    """A select list; with ``strict`` (the default) only the listed choices are
    accepted."""

    kind = "list"

    def __init__(self, name: str, choices: list[Any] | None = None, strict: bool = True,
                 multiple: bool = False, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.choices = [str(c) for c in (choices or [])]
        self.strict = strict
        self.multiple = multiple
        if self.default == "" and self.choices and not multiple:
            self.default = self.choices[0]

    def parse(self, form: Mapping[str, list[str]]) -> Any:
        values = [v for v in self.raw_value(form) if v.strip()]
        if not values:
            if self.required:
                raise ValidationError(f"'{self.label}' needs to be specified")
            return self.default
        for value in values:
            if self.strict and value not in self.choices:
                raise ValidationError(f"'{value}' is not one of the available choices for "
                                      f"'{self.label}': {', '.join(self.choices)}")
        return values if self.multiple else values[0]


class NestedParameter(BaseParameter):
    """A group of fields; its children's names get the group's name as prefix."""

    kind = "nested"

    def __init__(self, name: str, fields: list[BaseParameter], label: str = "",
                 **kwargs: Any) -> None:
        super().__init__(name, label=label, **kwargs)
        self.fields = [f for f in fields if f]
        self.set_prefix("")

    def set_prefix(self, prefix: str) -> None:
        self.fullName = f"{prefix}_{self.name}" if prefix and self.name else \
            (self.name or prefix)
        for child in self.fields:
            child.set_prefix(self.fullName)

    def parse(self, form: Mapping[str, list[str]]) -> dict[str, Any]:
        return {child.name: child.parse(form) for child in self.fields}


class AnyPropertyParameter(NestedParameter):
    """A free property: a name field and a value field (``<name>_name``,
    ``<name>_value``), both checked against the property patterns."""

    def __init__(self, name: str, label: str = "", **kwargs: Any) -> None:
        super().__init__(name, [StringParameter("name", label="Name:"),
                                StringParameter("value", label="Value:")],
                         label=label, **kwargs)

    def parse(self, form: Mapping[str, list[str]]) -> dict[str, Any]:
        pname = self.fields[0].parse(form).strip()
        pvalue = self.fields[1].parse(form)
        if not pname and not str(pvalue).strip():
            return {}
        if not pname:
            raise ValidationError(f"bad property name='{pname}', value='{pvalue}' "
                                  "(a value needs a name)")
        return {pname: pvalue}


class CodebaseParameter(NestedParameter):
    """The sources of one codebase: branch, revision, repository and project (each may be
    replaced by another parameter, e.g. a FixedParameter, or disabled with False)."""

    def __init__(self, codebase: str, name: str | None = None, label: str | None = None,
                 branch: Any = None, revision: Any = None, repository: Any = None,
                 project: Any = None, **kwargs: Any) -> None:
        def field_for(value: Any, fname: str, flabel: str) -> BaseParameter | None:
            if value is False:
                return None
            if value is None:
                return StringParameter(fname, label=flabel, size=30)
            if not isinstance(value, BaseParameter):
                argument_error(f"CodebaseParameter({codebase!r}): {fname} must be a "
                               "parameter or False")
                return None
            return value

        fields = [f for f in (field_for(branch, "branch", "Branch:"),
                              field_for(revision, "revision", "Revision:"),
                              field_for(repository, "repository", "Repository:"),
                              field_for(project, "project", "Project:")) if f is not None]
        if label is None:
            label = f"Codebase: {codebase}" if codebase else ""
        super().__init__(codebase if name is None else name, fields, label=label, **kwargs)
        self.codebase = codebase


@dataclass
class ForceRequest:
    """A validated force form: who, why, the sources per codebase and the properties."""

    owner: str
    reason: str
    sourcestamps: dict[str, dict[str, Any]] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)


def default_codebases(branch: Any, revision: Any, repository: Any, project: Any,
                      codebases: Any) -> list[CodebaseParameter]:
    """The ForceScheduler's codebase groups: ``codebases`` (names or
    CodebaseParameters), else one anonymous codebase from the four top-level fields."""
    if not codebases:
        return [CodebaseParameter("", branch=branch, revision=revision,
                                  repository=repository, project=project)]
    out: list[CodebaseParameter] = []
    if isinstance(codebases, str | bytes) or not hasattr(codebases, "__iter__"):
        argument_error("ForceScheduler: codebases must be a list of names or "
                       "CodebaseParameters")
        return out
    for cb in codebases:
        if isinstance(cb, CodebaseParameter):
            out.append(cb)
        elif isinstance(cb, str):
            out.append(CodebaseParameter(cb))
        else:
            argument_error("ForceScheduler: codebases must be names or CodebaseParameters")
    return out


def collect_force_request(username_param: BaseParameter | None, reason_param: BaseParameter,
                          codebases: list[CodebaseParameter], property_params: list[Any],
                          form: Mapping[str, list[str]], owner: str | None,
                          validation: Mapping[str, re.Pattern[str]] | None = None
                          ) -> ForceRequest:
    """Validate a submitted force form. ``owner`` is the logged-in user (then the
    username field is ignored); ``validation`` is c['validation'] (branch, revision,
    property_name, property_value patterns; Buildbot's defaults when None); raises
    :class:`ValidationError`."""
    patterns = {**{k: re.compile(v) for k, v in DEFAULT_VALIDATION.items()},
                **(validation or {})}
    if owner is None and username_param is not None:
        owner = str(username_param.parse(form) or "")
    reason = str(reason_param.parse(form) or "")
    stamps: dict[str, dict[str, Any]] = {}
    for cb in codebases:
        values = cb.parse(form)
        stamps[cb.codebase] = {k: (str(v) if v is not None else "") for k, v in values.items()
                               if k in ("branch", "revision", "repository", "project")}
        for key in ("branch", "revision"):
            given = stamps[cb.codebase].get(key, "")
            if given and not patterns[key].search(given):
                raise ValidationError(f"bad {key} '{given}' (it must match "
                                      f"{patterns[key].pattern!r})")
    props: dict[str, Any] = {}
    # a free name/value pair must not replace what a parameter of its own decides (a
    # FixedParameter's value, a strict choice, an int): only the free ones are free
    named = {p.name for p in property_params if not isinstance(p, AnyPropertyParameter)}
    for param in property_params:
        value = param.parse(form)
        if isinstance(param, AnyPropertyParameter):
            for pname, pvalue in value.items():
                if pname in named:
                    raise ValidationError(f"bad property name='{pname}': that property "
                                          "is set by its own field of this form")
                if not (patterns["property_name"].search(pname)
                        and patterns["property_value"].search(str(pvalue))):
                    raise ValidationError(
                        f"bad property name='{pname}', value='{pvalue}' (names must match "
                        f"{patterns['property_name'].pattern!r}, values "
                        f"{patterns['property_value'].pattern!r})")
            props.update(value)
        elif isinstance(param, NestedParameter):
            props[param.name] = value
        else:
            props[param.name] = value
    return ForceRequest(owner=owner or "<unknown>", reason=reason, sourcestamps=stamps,
                        properties=props)


__all__ = ["AnyPropertyParameter", "BaseParameter", "BooleanParameter",
           "ChoiceStringParameter", "CodebaseParameter", "FixedParameter", "ForceRequest",
           "IntParameter", "NestedParameter", "StringParameter", "TextParameter",
           "UserNameParameter", "ValidationError", "collect_force_request",
           "default_codebases"]
