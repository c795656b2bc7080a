"""``/change_hook/<dialect>``: changes pushed in by repositories and scripts.

Dialects are plugins (entry-point group ``bbweb.change_hooks``) enabled by
``WebStatus(change_hook_dialects=...)`` or plugins.toml. The framework here makes every
dialect safe by default (docs/plugins.md, "Change-hook dialects"):

1. ``change_hook_auth`` (HTTP Basic) when configured → 401;
2. a dialect that is not enabled → 404: the URL does not exist on this site;
3. only POST changes anything: GET (and HEAD) → 405, unless the dialect declares
   ``allow_get = True`` (the ``poller`` dialect, which Buildbot's documentation triggers with GET);
4. a body over the dialect's ``max_body_size`` option (default :data:`MAX_BODY_BYTES`)
   → 413 before anything is parsed;
5. the dialect's ``get_changes(request)``: ``ValueError`` → 400, ``PermissionError`` →
   403, ``RecursionError`` (a body nested too deeply for the decoder) → 400, anything else
   → 500 (logged). Every answer, success or error, is a short ``text/plain`` line that
   never carries the request body;
6. values and properties: every change is checked by
   :func:`bbweb.values.validation.check_change` (storable text, bounded property depth and
   size, a sane ``when``) → 400 naming the field; no change may set a reserved name
   (:data:`RESERVED_PROPERTIES`); a dialect
   that copies properties from the request (``base``) may only set the ones its
   ``allow_properties`` option allows (none by default);
7. redelivery: when the dialect's ``delivery_id(request)`` gives an id, each (dialect, id)
   is stored once; a repeat is answered 200 "already processed" and stores nothing;
8. the changes (and the delivery id) are stored in one transaction; the request is logged
   with the dialect, the delivery id and the change ids created.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from bbweb.engine.changes import ChangeInput
from bbweb.engine.hook_deliveries import AlreadyProcessed, normalize_delivery_id
from bbweb.engine.intake import intake_for
from bbweb.plugins.hooks.base import BaseHook
from bbweb.plugins.loading import enabled_dialects
from bbweb.plugins.site import site
from bbweb.values.validation import ValueRefused, check_change
from bbweb.web.hook_auth import check_hook_auth

bp = Blueprint("change_hook", __name__)
log = logging.getLogger("bbweb.change_hook")

# The largest request body a dialect accepts unless its ``max_body_size`` option says
# otherwise (GitHub caps its own payloads at 25 MB; a push of ordinary size is far below).
MAX_BODY_BYTES = 1024 * 1024

# Build properties the master sets itself: no change hook may set them, whatever its
# options (a change property would otherwise override them in the builds it triggers:
# ``owner`` picks mail recipients, ``reason``/``scheduler`` show on every page, …).
RESERVED_PROPERTIES = frozenset({
    "owner", "owners", "reason", "scheduler", "buildername", "buildnumber", "slavename",
    "workername", "branch", "revision", "repository", "project", "codebase",
    "got_revision", "workdir", "builddir", "slavebuilddir", "buildbotURL",
})

MAX_MESSAGE = 300
_DIALECT_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


class HookRefused(Exception):
    """Stop handling this request with ``status`` and ``message``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None
                 ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _short(message: str) -> str:
    """One line of at most MAX_MESSAGE characters (no CR/LF or control characters)."""
    text = _CONTROL.sub(" ", str(message)).strip()
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    resp = Response(message + ("\n" if message else ""), status=status,
                    mimetype="text/plain", headers=headers)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


# -- the dialect's framework options ---------------------------------------------------------

@dataclass(frozen=True)
class HookPolicy:
    """What the framework enforces for one dialect, from its configured options."""

    max_body_size: int = MAX_BODY_BYTES
    allowed_properties: frozenset[str] | None = frozenset()  # None: any non-reserved name
    request_properties: bool = False  # the dialect copies properties from the request


def option_problems(name: str, options: Any) -> list[str]:
    """What is wrong with the framework options in a dialect's options (for checkconfig)."""
    if not isinstance(options, dict):
        return []
    problems = []
    size = options.get("max_body_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool)
                             or size < 1):
        problems.append(f"change_hooks.{name}: max_body_size must be a positive number of "
                        "bytes")
    allowed = options.get("allow_properties")
    if allowed is not None and not isinstance(allowed, bool) and not (
            isinstance(allowed, list | tuple | set | frozenset)
            and all(isinstance(p, str) for p in allowed)):
        problems.append(f"change_hooks.{name}: allow_properties must be true, false or a "
                        "list of property names")
    return problems


def takes_request_properties(hook: Any) -> bool:
    """Whether the dialect's properties come from the request (so ``allow_properties``
    applies): its ``request_properties`` attribute, else true for ``base`` and dialects
    that reuse its ``get_changes``."""
    declared = getattr(hook, "request_properties", None)
    if declared is not None:
        return bool(declared)
    return getattr(type(hook), "get_changes", None) is BaseHook.get_changes


def configured_options(dialect: str, hook: Any) -> dict[str, Any]:
    """The options the site configured for ``dialect`` (master.cfg merged with
    plugins.toml), falling back to the ones the dialect was given."""
    s = site()
    options = enabled_dialects(s.config.web.change_hook_dialects,
                       s.plugin_settings.section("change_hooks")).get(dialect)
    if options is None:
        options = getattr(hook, "options", None)
    return options if isinstance(options, dict) else {}


def policy_for(dialect: str, hook: Any) -> HookPolicy:
    options = configured_options(dialect, hook)
    problems = option_problems(dialect, options)
    for problem in problems:  # refuse to guess: fall back to the safe defaults
        log.error("%s (using the default)", problem)
    size = options.get("max_body_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        size = MAX_BODY_BYTES
    allowed = options.get("allow_properties")
    if allowed is True:
        allowed_set: frozenset[str] | None = None
    elif isinstance(allowed, list | tuple | set | frozenset) and all(
            isinstance(p, str) for p in allowed):
        allowed_set = frozenset(allowed)
    else:
        allowed_set = frozenset()
    return HookPolicy(max_body_size=size, allowed_properties=allowed_set,
                      request_properties=takes_request_properties(hook))


# -- the steps ----------------------------------------------------------------------------------

def check_method(dialect: str, hook: Any) -> None:
    if request.method == "POST":
        return
    if request.method in ("GET", "HEAD") and getattr(hook, "allow_get", False):
        return
    raise HookRefused(405, f"change hooks only accept POST (the {dialect} dialect does not "
                           "take GET requests)", {"Allow": "POST"})


def check_size(policy: HookPolicy) -> None:
    """413 before anything is read; the limit also caps bodies without a length
    (chunked) while the dialect reads them."""
    request.max_content_length = policy.max_body_size
    length = request.content_length
    if length is not None and length > policy.max_body_size:
        raise _too_large(policy)


def _too_large(policy: HookPolicy) -> HookRefused:
    return HookRefused(413, f"the request body is larger than this hook accepts "
                            f"({policy.max_body_size} bytes)")


def parse(dialect: str, hook: Any, policy: HookPolicy) -> tuple[list[ChangeInput], str | None]:
    """The dialect's changes and delivery id; errors become HookRefused."""
    try:
        changes = hook.get_changes(request)
        delivery = None
        if callable(getattr(hook, "delivery_id", None)):
            delivery = normalize_delivery_id(hook.delivery_id(request))
    except PermissionError as exc:  # a signature or token that does not verify
        log.warning("change hook %s refused a request from %s: %s", dialect,
                    request.remote_addr, _short(str(exc)))
        raise HookRefused(403, _short(str(exc)) or "forbidden") from None
    except ValueError as exc:
        raise HookRefused(400, _short(str(exc)) or "malformed request") from None
    except RequestEntityTooLarge:
        raise _too_large(policy) from None
    except RecursionError:  # json.loads (or a dialect's own walk) of a very deep payload
        raise HookRefused(400, "the request is nested too deeply") from None
    except HTTPException as exc:  # e.g. werkzeug's BadRequest for an unparsable body
        if exc.code is not None and exc.code < 500:
            raise HookRefused(exc.code, "malformed request") from None
        log.exception("change hook %s failed to parse a request", dialect)
        raise HookRefused(500, "Error processing changes.") from None
    except Exception:
        log.exception("change hook %s failed to parse a request", dialect)
        raise HookRefused(500, "Error processing changes.") from None
    if changes is None:
        changes = []
    if not isinstance(changes, list) or not all(isinstance(c, ChangeInput) for c in changes):
        log.error("change hook %s returned %s instead of a list of ChangeInput", dialect,
                  type(changes).__name__)
        raise HookRefused(500, "Error processing changes.")
    return changes, delivery


def _name(name: Any) -> str:
    return repr(name) if isinstance(name, str) and _SAFE_NAME.match(name) else "a property"


def check_properties(changes: list[ChangeInput], policy: HookPolicy) -> None:
    """Reserved names never; request-supplied names only as ``allow_properties`` says."""
    for ch in changes:
        props = ch.properties if isinstance(ch.properties, dict) else {}
        for name in props:
            if name in RESERVED_PROPERTIES:
                raise HookRefused(400, f"property {name!r} is reserved: a change hook "
                                       "cannot set it")
        if not policy.request_properties or not props:
            continue
        if policy.allowed_properties is None:
            continue
        if not policy.allowed_properties:
            raise HookRefused(400, "this change hook does not accept properties (the "
                                   "dialect's allow_properties option enables them)")
        for name in props:
            if name not in policy.allowed_properties:
                raise HookRefused(400, f"{_name(name)} is not one of the properties this "
                                       "change hook accepts (allow_properties)")


def check_values(changes: list[ChangeInput]) -> None:
    """Refuse (400, naming the field) what no database stores or no page shows, from any
    dialect: NUL characters and lone surrogates in any text (property values included),
    property values nested deeper or larger than :mod:`bbweb.values.validation` allows,
    and times that are not finite or are beyond year 5000."""
    for ch in changes:
        try:
            check_change(ch)
        except ValueRefused as exc:
            raise HookRefused(400, _short(f"the change cannot be stored: {exc}")) from None


def store(dialect: str, changes: list[ChangeInput], delivery: str | None) -> list[int]:
    """Store the changes, claiming the delivery id in the same transaction; raises
    AlreadyProcessed (nothing stored) for a delivery seen before. Concurrent requests of
    this process share a transaction (:mod:`bbweb.engine.intake`); each is answered once
    its own changes are committed."""
    s = site()
    return intake_for(s.db).store(s.config, dialect, changes, delivery)


def no_changes_response(dialect: str) -> Response:
    """200 for a request that was fine but gave no change (a ping, a tag push, …); a note
    the dialect left in ``flask.g.change_hook_note`` is shown after Buildbot's documented text."""
    note = g.get("change_hook_note")
    if note:
        return _text(200, "no changes found: " + _short(str(note)))
    return _text(200, "no changes found")


# -- the view ----------------------------------------------------------------------------------

# Every method reaches the view, so that refusing one is a text/plain answer like the rest
# (not the HTML page Flask's router would give, nor its automatic OPTIONS answer).
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@bp.route("", methods=METHODS, strict_slashes=False)
@bp.route("/<dialect>", methods=METHODS)
def change_hook(dialect: str = "base") -> Any:
    """Every answer is a short ``text/plain`` line (docs/plugins.md), successes included."""
    try:
        return _change_hook(dialect)
    except Exception:  # the database, a scheduler, a bug: never Flask's HTML error page
        log.exception("change hook %s failed",
                      dialect if _DIALECT_NAME.match(dialect) else "(bad name)")
        return _text(500, "Error processing changes.")


def _change_hook(dialect: str) -> Response:
    s = site()
    denied = check_hook_auth(s.config.web.change_hook_auth, s.basedir)
    if denied is not None:
        return denied
    hook = s.change_hooks.get(dialect)
    if hook is None:
        shown = repr(dialect) if _DIALECT_NAME.match(dialect) else "in the URL"
        return _text(404, f"The dialect specified, {shown}, is not enabled in "
                          "change_hook_dialects")
    try:
        policy = policy_for(dialect, hook)
        check_method(dialect, hook)
        check_size(policy)
        changes, delivery = parse(dialect, hook, policy)
        check_values(changes)
        check_properties(changes, policy)
        if not changes and delivery is None:
            return no_changes_response(dialect)
        ids = store(dialect, changes, delivery)
    except HookRefused as refused:
        return _text(refused.status, refused.message, refused.headers)
    except AlreadyProcessed:
        log.info("change hook %s: delivery %s from %s was already processed; nothing stored",
                 dialect, delivery, request.remote_addr)
        return _text(200, "already processed")
    except ValueError as exc:  # ChangeError: a change that cannot be stored as given
        return _text(400, _short(str(exc)) or "malformed change")
    log.info("change hook %s: delivery %s from %s accepted, change(s) %s", dialect,
             delivery or "-", request.remote_addr, ids or "none")
    if not ids:
        return no_changes_response(dialect)
    return stored_response(ids)


def stored_response(ids: list[int]) -> Response:
    """202 and the ids of the changes stored (``/changes/N`` shows each)."""
    noun = "change" if len(ids) == 1 else "changes"
    return _text(202, f"stored {len(ids)} {noun}: {' '.join(str(i) for i in ids)}")
