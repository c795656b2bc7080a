"""What a plugin of each kind must offer (docs/plugins.md), checked when it loads.

A plugin that does not fit is left out and reported by its ``kind.name`` like one that
fails to import: ``bbweb checkconfig`` and ``bbweb start`` list it with the line that
enables it, a web process logs it and answers its URL as it answers a disabled one (404),
never with a 500 at request time.

* ``bbweb.change_hooks``: a class, made with ``(options, config)``, whose instances are
  :class:`ChangeHookDialect`;
* ``bbweb.auth``: a class, made with plugins.toml's keyword arguments, whose instances
  are :class:`~bbweb.mastercfg.interfaces.AuthBackend`;
* ``bbweb.notifiers``: a class whose instances are
  :class:`~bbweb.mastercfg.interfaces.EventConsumer` (``consumer_name``,
  ``handle_event``; the rest is described in :mod:`bbweb.daemon.consumers`);
* ``bbweb.pages``: a :class:`PageFactory`, ``make_blueprint(options, config)`` returning
  a ``flask.Blueprint`` (checked when it is called).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from flask import Blueprint, Request

from bbweb.engine.changes import ChangeInput
from bbweb.mastercfg.interfaces import AuthBackend, EventConsumer
from bbweb.mastercfg.master import MasterConfig

__all__ = ["AuthBackend", "ChangeHookDialect", "EventConsumer", "PageFactory",
           "dialect_problem", "notifier_problem", "auth_problem"]


@runtime_checkable
class ChangeHookDialect(Protocol):
    """A change-hook dialect, once made with ``(options, config)``. Optional:
    ``delivery_id(request) -> str | None``, ``src``, ``allow_get``, ``request_properties``
    (docs/plugins.md, "The interface")."""

    def get_changes(self, request: Request) -> list[ChangeInput]:
        """The changes of one request, in order; ``ValueError`` -> 400,
        ``PermissionError`` -> 403."""
        ...


class PageFactory(Protocol):
    """A ``bbweb.pages`` entry point."""

    def __call__(self, options: dict[str, Any], config: MasterConfig) -> Blueprint: ...


def _missing(obj: Any, methods: tuple[str, ...]) -> list[str]:
    return [m for m in methods if not callable(getattr(obj, m, None))]


def dialect_problem(hook: object) -> str | None:
    """Why a made dialect cannot serve requests, or None."""
    missing = _missing(hook, ("get_changes",))
    optional = getattr(hook, "delivery_id", None)
    if optional is not None and not callable(optional):
        missing.append("delivery_id")
    if missing:
        return (f"{type(hook).__name__} is not a change-hook dialect: it has no "
                f"{', '.join(m + '(request)' for m in missing)} method (docs/plugins.md)")
    return None


def auth_problem(backend: object) -> str | None:
    """Why an authentication back end cannot check passwords, or None."""
    if _missing(backend, ("authenticate",)):
        return (f"{type(backend).__name__} is not an authentication back end: it has no "
                "authenticate(user, passwd) method (docs/plugins.md)")
    return None


def notifier_problem(cls: object) -> str | None:
    """Why a notifier class cannot follow the event table, or None. (``consumer_name``
    may be set by its constructor, so only the method is checked on the class.)"""
    if _missing(cls, ("handle_event",)):
        name = getattr(cls, "__name__", type(cls).__name__)
        return (f"{name} is not a notifier: it has no handle_event(event) method "
                "(bbweb/daemon/consumers.py)")
    return None
