"""Forcing builds from the web: ``/builders/X/force``, ``/builders/_all/forceall`` and
``/builders/_selected/forceselected``, and the force forms'
model for the templates.

A form is drawn from one ForceScheduler's parameters (:mod:`bbweb.mastercfg.forcefields`);
the POST validates every field server-side and schedules nothing when one is wrong. Two
kinds of wrong: a choice the form's rules refuse (a branch not matching the pattern, a
missing reason) sends the user back to the page with the message, to correct it there; a
value no database can store (a NUL character, an unpaired surrogate, a property nested too
deeply or too large: :mod:`bbweb.values.validation`) is refused with 400 naming the field,
as the change hooks refuse it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Blueprint, Response, request
from werkzeug.datastructures import MultiDict

from bbweb.engine.buildsets import BuildsetError
from bbweb.engine.force import force_build
from bbweb.mastercfg.forcefields import BaseParameter, ValidationError
from bbweb.mastercfg.schedulers import ForceScheduler
from bbweb.plugins.site import site
from bbweb.status import actions as status_actions
from bbweb.status.naming import natural_key
from bbweb.values.validation import ValueRefused, check_text, label
from bbweb.web.actions import METHODS, acting_user, back, builder_page, no_such
from bbweb.web.authz import (
    action_allowed,
    action_guard,
    current_username,
    deny,
    refuse_unless_allowed,
)
from bbweb.web.helpers import builder_infos

bp = Blueprint("actions_force", __name__)


@dataclass
class ForceForm:
    """One ForceScheduler's form on a page."""

    name: str
    button: str
    builders: list[str]  # the page's builders this scheduler can force
    fields: list[BaseParameter]
    prefill: dict[str, list[str]] = field(default_factory=dict)

    def value(self, param: BaseParameter) -> str:
        """The field's initial text: ``?<scheduler>.<field>=…`` from the page's URL, else
        the parameter's default."""
        given = self.prefill.get(param.fullName)
        if given:
            return given[0]
        default = param.default
        return "" if default is None or isinstance(default, bool) else str(default)

    def values(self, param: BaseParameter) -> list[str]:
        given = self.prefill.get(param.fullName)
        if given:
            return given
        default = param.default
        return [str(d) for d in default] if isinstance(default, list | tuple) else \
            [str(default)]

    def checked(self, param: BaseParameter) -> bool:
        given = self.prefill.get(param.fullName)
        if given:
            return given[0].lower() not in ("", "0", "false", "no", "off")
        return bool(param.default)


def force_schedulers(builder_names: list[str]) -> list[ForceScheduler]:
    """The ForceSchedulers that can force at least one of ``builder_names``, by name."""
    cfg = site().config
    wanted = set(builder_names)
    return sorted((s for s in cfg.schedulers.values()
                   if isinstance(s, ForceScheduler) and wanted & set(s.builderNames)),
                  key=lambda s: s.name)


@bp.app_template_global()
def force_forms(builder_names: list[str]) -> list[ForceForm]:
    """The force forms for a page listing ``builder_names`` (one per ForceScheduler that
    can force one of them). The username field is left out for a logged-in user."""
    logged_in = current_username() is not None
    forms = []
    for sched in force_schedulers(builder_names):
        fields: list[BaseParameter] = []
        if sched.username_param is not None and not logged_in:
            fields.append(sched.username_param)
        fields += [sched.reason_param, *sched.codebase_params, *sched.property_params]
        prefix = sched.name + "."
        prefill = {k[len(prefix):]: request.args.getlist(k) for k in request.args
                   if k.startswith(prefix)}
        forms.append(ForceForm(sched.name, sched.buttonName,
                               sorted((b for b in sched.builderNames if b in builder_names),
                                      key=natural_key), fields, prefill))
    return forms


def _refused(exc: ValueRefused) -> Response:
    """400 naming the field, never echoing the value. Plain text: the browser's Back button
    returns to the form with what was typed, where a redirect would lose it."""
    return Response(f"Nothing forced: {exc}.\n", status=400,
                    content_type="text/plain; charset=utf-8")


def _unstorable(form: MultiDict[str, str]) -> Response | None:
    """The 400 for a submitted field no database can store, before any field is read (a
    form rule's message could otherwise carry the value back to the page)."""
    try:
        for key in form:
            check_text(f"the form field {label(key)}", key)
            for value in form.getlist(key):
                check_text(f"the form field {label(key)}", value)
    except ValueRefused as exc:
        return _refused(exc)
    return None


def _scheduler(page: str) -> tuple[ForceScheduler | None, Response | None]:
    name = (request.form.get("forcescheduler") or "").strip()
    if not name:
        return None, back(page, "Nothing forced: the form did not say which force "
                                "scheduler to use.", "error")
    sched = site().config.schedulers.get(name)
    if not isinstance(sched, ForceScheduler):
        return None, back(page, f"Nothing forced: no force scheduler named '{name}'.",
                          "error")
    return sched, None


def _force(sched: ForceScheduler, names: list[str], page: str) -> Response:
    """Validate the submitted form and create one buildset for ``names``."""
    form = {k: request.form.getlist(k) for k in request.form}
    owner = acting_user() if current_username() is not None else None
    try:
        wanted = sched.parse_form(form, owner, site().config.validation)
    except ValidationError as exc:
        return back(page, f"Nothing forced: {exc}", "error")
    s = site()
    try:
        with s.db.write() as conn:
            _bsid, brids = force_build(conn, s.config, names, reason=wanted.reason,
                                       owner=wanted.owner, codebases=wanted.sourcestamps,
                                       properties=wanted.properties, scheduler=sched.name)
    except ValueRefused as exc:
        return _refused(exc)
    except BuildsetError as exc:
        return back(page, f"Nothing forced: {exc}", "error")
    what = ", ".join(names)
    return back(page, f"Forced a build of {what} by {wanted.owner}"
                      f"{': ' + wanted.reason if wanted.reason else ''} "
                      f"({len(brids)} request{'s' if len(brids) != 1 else ''} queued).")


@bp.route("/builders/<path:name>/force", methods=METHODS)
def force(name: str) -> Response:
    resp = action_guard("forceBuild")
    if resp:
        return resp
    s = site()
    if name not in s.config.builders:
        return no_such(f"No such builder {name!r}.")
    with s.db.read() as conn:
        builder = builder_infos(conn, [name])[name]
    if not action_allowed("forceBuild", status_actions.as_status(builder)):
        return deny("forceBuild")
    page = builder_page(name)
    refused = _unstorable(request.form)
    if refused:
        return refused
    sched, problem = _scheduler(page)
    if problem or sched is None:
        return problem  # type: ignore[return-value]
    if name not in sched.builderNames:
        return back(page, f"Nothing forced: force scheduler '{sched.name}' cannot build "
                          f"{name}.", "error")
    return _force(sched, [name], page)


@bp.route("/builders/_all/forceall", methods=METHODS)
@bp.route("/builders/_selected/forceselected", methods=METHODS)
def force_many() -> Response:
    refused = refuse_unless_allowed("forceAllBuilds") or _unstorable(request.form)
    if refused:
        return refused
    sched, problem = _scheduler("builders")
    if problem or sched is None:
        return problem  # type: ignore[return-value]
    cfg = site().config
    names = [b for b in sched.builderNames if b in cfg.builders]
    if request.path.rstrip("/").endswith("forceselected"):
        selected = set(request.form.getlist("selected"))
        names = [b for b in names if b in selected]
        if not names:
            return back("builders", f"Nothing forced: select at least one of the builders "
                                    f"of '{sched.name}'.", "error")
    if not names:
        return back("builders", f"Nothing forced: '{sched.name}' has no builders.", "error")
    return _force(sched, names, "builders")


__all__ = ["ForceForm", "bp", "force_forms", "force_schedulers"]
