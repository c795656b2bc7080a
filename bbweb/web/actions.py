"""The control actions of the web status:
stop and rebuild builds, cancel pending requests, ping, pause and gracefully shut down
workers, clean shutdown of the master. The force actions are in
:mod:`bbweb.web.actions_force`.

Every action is a POST carrying the session's CSRF token (:func:`action_guard`; a GET is
answered 405 and changes nothing), is checked against the site's Authz with the objects
Buildbot 0.8 names, calls one engine function in one transaction, and answers with a 303
redirect back to the page the form was on, with a message (flashed, shown escaped by the
layout).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, flash, redirect, request

from bbweb.engine import actions as engine
from bbweb.engine import actions_slaves
from bbweb.engine.slaves import heartbeat_timeout
from bbweb.plugins.site import site
from bbweb.status import actions as status_actions
from bbweb.status import detail, queries
from bbweb.status.naming import natural_key
from bbweb.status.records import BuilderInfo
from bbweb.values.numbers import in_int_range, is_int_text
from bbweb.web.authz import (
    action_allowed,
    action_guard,
    current_user_info,
    current_username,
    deny,
    refuse_unless_allowed,
    safe_next,
)
from bbweb.web.helpers import builder_infos, page_root

bp = Blueprint("actions", __name__)

METHODS = ["GET", "HEAD", "POST"]  # anything but POST is answered 405 by action_guard
MAX_REASON = 1000  # characters of a comment kept (a form field is not a document)
ANONYMOUS = "<unknown>"


# -- shared helpers -------------------------------------------------------------------------

def acting_user() -> str:
    """Who is acting, as recorded on what the action touches: the logged-in user ("Full
    Name <email>" when known, as 0.8 did), else ``<unknown>``."""
    info = current_user_info()
    if info is None:
        return current_username() or ANONYMOUS
    if info.get("email"):
        return f"{info.get('full_name') or info['name']} <{info['email']}>"
    return info["name"]


def comments() -> str:
    """The form's ``comments`` (the reason), trimmed and bounded."""
    return (request.form.get("comments") or "").strip()[:MAX_REASON]


def segment(name: str) -> str:
    return quote(name, safe="")


def back(default: str, message: str | None = None, category: str = "info") -> Response:
    """Redirect (303) to the page the form named in its ``back`` field when that is a
    path on this site, else to ``default`` (both relative to the site root)."""
    if message:
        flash(message, category)
    target = safe_next(request.form.get("back")) or default
    resp = redirect(page_root() + target, code=303, Response=Response)
    assert isinstance(resp, Response)  # for the type checker: redirect() is typed loosely
    resp.autocorrect_location_header = False
    return resp


def builder_page(name: str) -> str:
    return f"builders/{segment(name)}"


def known_builder(name: str) -> bool:
    return name in site().config.builders


def no_such(what: str) -> Response:
    return Response(f"{what}\n", status=404, content_type="text/plain; charset=utf-8")


def _builder_record(conn: Any, name: str) -> BuilderInfo:
    return builder_infos(conn, [name])[name]


def selected_builders() -> list[str]:
    """The ``selected`` builder names that exist (unknown ones are ignored)."""
    cfg = site().config
    return [n for n in dict.fromkeys(request.form.getlist("selected")) if n in cfg.builders]


def _int_field(name: str) -> int | None:
    value = (request.form.get(name) or "").strip().lstrip("#")
    if not is_int_text(value) or not in_int_range(int(value)):
        return None
    return int(value)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# -- builds: stop, rebuild ------------------------------------------------------------------

BUILD = "/builders/<path:name>/builds/<int(signed=True):number>"


def _guarded_build(action: str, name: str, number: int) -> Response | tuple[Any, Any]:
    """The guard of an action on one build, then (builder, build) — or the answer to send
    (refused, or 404 for a build that does not exist)."""
    refused = action_guard(action)
    if refused:
        return refused
    with site().db.read() as conn:
        builder, build = detail.find_build(conn, name, number)
    if builder is None or build is None:
        return no_such(f"No build #{number} of builder {name!r}.")
    return builder, build


@bp.route(BUILD + "/stop", methods=METHODS)
def stop_build(name: str, number: int) -> Response:
    found = _guarded_build("stopBuild", name, number)
    if isinstance(found, Response):
        return found
    builder, build = found
    s = site()
    if not action_allowed("stopBuild", status_actions.as_status(build)):
        return deny("stopBuild")
    page = f"{builder_page(build.builder)}/builds/{build.number}"
    if build.is_finished:
        return back(page, f"Build #{build.number} of {build.builder} has already finished.",
                    "error")
    user = acting_user()
    with s.db.write() as conn:
        stopped = engine.stop_build(conn, build.id, user, comments())
    if not stopped:
        return back(page, f"A stop of build #{build.number} of {build.builder} was already "
                          "requested (or it just finished).", "error")
    return back(page, f"Build #{build.number} of {build.builder} is being stopped: "
                      f"{engine.stop_reason(user, comments())}")


@bp.route(BUILD + "/rebuild", methods=METHODS)
def rebuild(name: str, number: int) -> Response:
    found = _guarded_build("forceBuild", name, number)
    if isinstance(found, Response):
        return found
    builder, build = found
    s = site()
    if not action_allowed("forceBuild", status_actions.as_status(builder)):
        return deny("forceBuild")
    page = builder_page(build.builder)
    try:
        extra = _legacy_properties()
        with s.db.write() as conn:
            _bsid, brids = engine.rebuild(conn, s.config, build.id, acting_user(), comments(),
                                          request.form.get("useSourcestamp") or "exact",
                                          extra)
    except engine.ActionError as exc:
        return back(page, str(exc), "error")
    return back(page, f"Build #{build.number} of {build.builder} was resubmitted "
                      f"(request {brids[build.builder]}).")


def _legacy_properties() -> dict[str, str]:
    """``property1name``/``property1value``, … (0.8's rebuild form), consecutive, up to
    the first empty name; checked with the force form's property patterns."""
    patterns = site().config.validation
    out: dict[str, str] = {}
    i = 1
    while True:
        pname = (request.form.get(f"property{i}name") or "").strip()
        if not pname:
            return out
        pvalue = request.form.get(f"property{i}value") or ""
        if not (patterns["property_name"].search(pname)
                and patterns["property_value"].search(pvalue)):
            raise engine.ActionError(f"could not rebuild: bad property name='{pname}', "
                                     f"value='{pvalue}'")
        out[pname] = pvalue
        i += 1


# -- pending requests: cancel, stop change --------------------------------------------------

@bp.route("/builders/<path:name>/cancelbuild", methods=METHODS)
def cancel_build(name: str) -> Response:
    resp = action_guard("cancelPendingBuild")
    if resp:
        return resp
    if not known_builder(name):
        return no_such(f"No such builder {name!r}.")
    page = builder_page(name)
    wanted = (request.form.get("id") or "").strip()
    brid = _int_field("id")
    if wanted != "all" and brid is None:
        return back(page, "Nothing cancelled: the form gave no request number.", "error")
    s = site()
    with s.db.read() as conn:
        pending = queries.pending_build_requests(conn, _builder_record(conn, name),
                                                 details=True)
    targets = pending if wanted == "all" else [r for r in pending if r.id == brid]
    if not targets:
        if wanted == "all":
            return back(page, f"{name} has no pending build requests.", "error")
        return back(page, f"Request {brid} is not pending any more (it was started or "
                          "cancelled already).", "error")
    if not all(action_allowed("cancelPendingBuild", status_actions.as_status(r))
               for r in targets):
        return deny("cancelPendingBuild")
    with s.db.write() as conn:
        done = engine.cancel_requests(conn, [r.id for r in targets], acting_user(),
                                      comments())
    if not done:
        return back(page, "Nothing cancelled: the request was started in the meantime.",
                    "error")
    return back(page, f"Cancelled {_plural(len(done), 'pending build request')} of {name}.")


@bp.route("/builders/<path:name>/stopchange", methods=METHODS)
def stop_change(name: str) -> Response:
    resp = action_guard("stopChange")
    if resp:
        return resp
    if not known_builder(name):
        return no_such(f"No such builder {name!r}.")
    return _stop_change([name], builder_page(name), per_request=True)


def _stop_change(names: list[str] | None, page: str, per_request: bool) -> Response:
    changeid = _int_field("change")
    if changeid is None:
        return back(page, "Nothing cancelled: give a change number.", "error")
    s = site()
    with s.db.read() as conn:
        builderids = None
        if names is not None:
            builderids = [b.id for b in builder_infos(conn, names).values() if b.id >= 0]
        brids = engine.pending_request_ids(conn, builderids, changeid)
        if per_request and brids:
            reqs = [r for n in names or [] for r in queries.pending_build_requests(
                conn, _builder_record(conn, n), details=True) if r.id in brids]
            if not all(action_allowed("stopChange", status_actions.as_status(r))
                       for r in reqs):
                return deny("stopChange")
    with s.db.write() as conn:
        done = engine.cancel_requests(conn, brids, acting_user(),
                                      comments() or f"change {changeid} was stopped")
    if not done:
        return back(page, f"No pending build request contains change {changeid}.", "error")
    return back(page, f"Cancelled {_plural(len(done), 'pending build request')} containing "
                      f"change {changeid}.")


@bp.route("/builders/_all/stopchangeall", methods=METHODS)
def stop_change_all() -> Response:
    refused = refuse_unless_allowed("stopChange")
    if refused:
        return refused
    return _stop_change(None, "builders", per_request=False)


def _all_or_selected(all_action: str) -> tuple[list[str] | None, list[int] | None] | None:
    """The builders an ``_all``/``_selected`` URL means, as (names, builder ids):
    (None, None) for every builder (the URL ends with ``all_action``), None when the form
    selected none."""
    if request.path.rstrip("/").endswith(all_action):
        return None, None
    names = selected_builders()
    if not names:
        return None
    with site().db.read() as conn:
        return names, [b.id for b in builder_infos(conn, names).values() if b.id >= 0]


@bp.route("/builders/_all/cancelpendingall", methods=METHODS)
@bp.route("/builders/_selected/cancelpendingselected", methods=METHODS)
def cancel_pending_many() -> Response:
    refused = refuse_unless_allowed("cancelAllPendingBuilds")
    if refused:
        return refused
    target = _all_or_selected("cancelpendingall")
    if target is None:
        return back("builders", "Nothing cancelled: no builder was selected.", "error")
    names, builderids = target
    s = site()
    with s.db.read() as conn:
        brids = engine.pending_request_ids(conn, builderids)
    with s.db.write() as conn:
        done = engine.cancel_requests(conn, brids, acting_user(), comments())
    where = "all builders" if names is None else ", ".join(names)
    if not done:
        return back("builders", f"No pending build requests on {where}.", "error")
    return back("builders", f"Cancelled {_plural(len(done), 'pending build request')} on "
                            f"{where}.")


@bp.route("/builders/_all/stopall", methods=METHODS)
@bp.route("/builders/_selected/stopselected", methods=METHODS)
def stop_many() -> Response:
    refused = refuse_unless_allowed("stopAllBuilds")
    if refused:
        return refused
    target = _all_or_selected("stopall")
    if target is None:
        return back("builders", "Nothing stopped: no builder was selected.", "error")
    names, builderids = target
    s = site()
    with s.db.write() as conn:
        stopped = engine.stop_builds(conn, builderids, acting_user(), comments())
    where = "any builder" if names is None else ", ".join(names)
    if not stopped:
        return back("builders", f"No build is running on {where}.", "error")
    return back("builders", f"Stopping {_plural(len(stopped), 'running build')}.")


# -- workers: ping, graceful shutdown, pause ------------------------------------------------

@bp.route("/builders/<path:name>/ping", methods=METHODS)
def ping(name: str) -> Response:
    resp = action_guard("pingBuilder")
    if resp:
        return resp
    if not known_builder(name):
        return no_such(f"No such builder {name!r}.")
    s = site()
    with s.db.read() as conn:
        builder = _builder_record(conn, name)
    if not action_allowed("pingBuilder", status_actions.as_status(builder)):
        return deny("pingBuilder")
    slavenames = s.config.builders[name].slavenames
    with s.db.write() as conn:
        result = actions_slaves.ping_slaves(conn, slavenames, acting_user())
    parts = []
    if result.pinged:
        parts.append(f"Pinged {', '.join(result.pinged)}: the answer shows below within "
                     "a few seconds (reload the page).")
    if result.offline:
        parts.append(f"Not connected, not pinged: {', '.join(result.offline)}.")
    return back(builder_page(name), " ".join(parts) or "This builder has no slaves.",
                "info" if result.pinged else "error")


def _slave_action(name: str, action: str) -> tuple[Response | None, Any]:
    resp = action_guard(action)
    if resp:
        return resp, None
    s = site()
    if name not in s.config.slaves:
        return no_such(f"No such slave {name!r}."), None
    with s.db.read() as conn:
        slave = queries.get_slaves(conn, s.config, [name])[name]
    if not action_allowed(action, status_actions.as_status(slave)):
        return deny(action), None
    return None, slave


@bp.route("/buildslaves/<path:name>/shutdown", methods=METHODS)
def graceful_shutdown(name: str) -> Response:
    resp, slave = _slave_action(name, "gracefulShutdown")
    if resp:
        return resp
    page = f"buildslaves/{segment(name)}"
    if not slave.connected:
        return back(page, f"{name} is not connected.", "error")
    with site().db.write() as conn:
        asked = actions_slaves.request_graceful_shutdown(conn, name, acting_user())
    if not asked:
        return back(page, f"{name} will already shut down gracefully.", "error")
    return back(page, f"{name} will shut down gracefully when it is idle.")


@bp.route("/buildslaves/<path:name>/pause", methods=METHODS)
@bp.route("/buildslaves/<path:name>/unpause", methods=METHODS)
def pause(name: str) -> Response:
    resp, _slave = _slave_action(name, "pauseSlave")
    if resp:
        return resp
    paused = not request.path.rstrip("/").endswith("/unpause")
    with site().db.write() as conn:
        changed = actions_slaves.set_paused(conn, name, paused, acting_user())
    page = f"buildslaves/{segment(name)}"
    if not changed:
        return back(page, f"{name} was already {'paused' if paused else 'running'}.",
                    "error")
    return back(page, f"{name} is paused: no new builds start on it." if paused
                else f"{name} is unpaused: it takes builds again.")


# -- the master: clean shutdown --------------------------------------------------------------

@bp.route("/shutdown", methods=METHODS)
@bp.route("/cancel_shutdown", methods=METHODS)
def clean_shutdown() -> Response:
    refused = refuse_unless_allowed("cleanShutdown")
    if refused:
        return refused
    cancel = request.path.rstrip("/").endswith("cancel_shutdown")
    user = acting_user()
    with site().db.write() as conn:
        if cancel:
            changed = engine.cancel_clean_shutdown(conn, user)
        else:
            changed = engine.request_clean_shutdown(conn, user, comments())
    if cancel:
        return back("", "Clean shutdown cancelled: builds start again." if changed
                    else "No clean shutdown was pending.", "info" if changed else "error")
    return back("", "Clean shutdown started: no new builds start; the master stops once "
                    "the running builds are finished." if changed
                else "A clean shutdown is already in progress.",
                "info" if changed else "error")


# -- what the pages' action forms need ------------------------------------------------------

@bp.app_template_global()
def slave_action_info(names: list[str]) -> dict[str, status_actions.SlaveActions]:
    """name -> who paused / asked to shut down / pinged each worker, and the ping's
    answer (for the builder and slave pages)."""
    with site().db.read() as conn:
        return status_actions.slave_actions(conn, names)


@bp.app_template_global()
def ping_wait(name: str) -> float:
    """Seconds after which an unanswered ping counts as lost (the worker's heartbeat
    timeout: by then it has contacted the master if it is alive)."""
    return heartbeat_timeout(site().config, name)


@bp.app_template_global()
def now_time() -> float:
    return time.time()


@bp.app_template_global()
def recent_cancellations(builder: str) -> list[status_actions.CancelledRequest]:
    with site().db.read() as conn:
        rows = queries.builder_rows(conn, [builder])
        return status_actions.recent_cancellations(conn, rows[builder].id) \
            if builder in rows else []


@bp.app_template_global()
def clean_shutdown_info() -> status_actions.CleanShutdown | None:
    with site().db.read() as conn:
        return status_actions.clean_shutdown(conn)


__all__ = ["acting_user", "back", "bp", "comments"]


@bp.app_template_global()
def site_builder_names() -> list[str]:
    """Every configured builder (pages that list "all builders" without naming them)."""
    return sorted(site().config.builders, key=natural_key)
