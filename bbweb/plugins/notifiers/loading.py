"""Which notifiers a master runs: master.cfg's ``c['status']`` plus plugins.toml's
``[notifiers]``.

master.cfg enables one with Buildbot's import path
(``from bbweb.status.mail import MailNotifier``; ``c['status'].append(MailNotifier(...))``),
plugins.toml with ``mail = { fromaddr = "...", ... }`` (the table is the keyword
arguments of the class registered under the ``bbweb.notifiers`` entry point ``mail``).
``mail = false`` in plugins.toml turns off master.cfg's notifiers of that plugin too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from bbweb.mastercfg.errors import ConfigErrors
from bbweb.mastercfg.interfaces import is_consumer
from bbweb.plugins.notifiers.base import Notifier, check_notifier_class
from bbweb.plugins.registry import PluginSettings, discover, not_installed

log = logging.getLogger("bbweb.notifiers")


def _resolve_paths(options: dict[str, Any], basedir: str) -> dict[str, Any]:
    """A relative file option (``*File``, ``*_file``) is relative to the basedir."""
    kwargs = dict(options)
    for opt, value in kwargs.items():
        if (opt.endswith(("File", "_file"))) and isinstance(value, str) \
                and not os.path.isabs(os.path.expanduser(value)):
            kwargs[opt] = os.path.join(basedir, value)
    return kwargs


def load_notifiers(cfg: Any, settings: PluginSettings
                   ) -> tuple[list[Any], dict[str, str], list[str]]:
    """The notifiers to run: ``(notifiers, failures, warnings)``.

    ``failures`` maps ``notifiers.<name>`` to why a plugins.toml entry cannot be used (not
    installed, failed to import, not a notifier, bad options); ``warnings`` says which
    notifiers were renamed because two had the same name."""
    section = settings.section("notifiers")
    disabled = {name for name, value in section.items() if value is False}
    found: list[Any] = []
    warnings: list[str] = []
    for target in cfg.status:
        if isinstance(target, Notifier):
            if target.plugin_name in disabled:
                warnings.append(f"{target.name!r} ({type(target).__name__} in master.cfg) is "
                                f"not run: plugins.toml sets {target.plugin_name} = false")
                continue
            found.append(target)
    failures: dict[str, str] = {}
    wanted = {name: value for name, value in section.items() if value is not False}
    plugins = discover("notifiers", wanted) if wanted else None
    for name, options in wanted.items():
        key = f"notifiers.{name}"
        assert plugins is not None
        cls = plugins.plugins.get(name)
        if cls is None:
            failures[key] = plugins.failed.get(name) or not_installed("notifiers", name)
            continue
        problem = check_notifier_class(name, cls)
        if problem:
            failures[key] = problem
            continue
        kwargs = _resolve_paths(options if isinstance(options, dict) else {}, cfg.basedir)
        try:
            notifier = cls(**kwargs)
        except ConfigErrors as exc:
            failures[key] = "; ".join(exc.errors)
            continue
        except Exception as exc:  # a TypeError for an unknown option, a plugin's own bug
            failures[key] = f"{type(exc).__name__}: {exc}"
            continue
        if not is_consumer(notifier):
            failures[key] = (f"{type(notifier).__name__}() has no consumer_name string "
                             "(subclass bbweb.plugins.notifiers.base.Notifier)")
            continue
        if isinstance(notifier, Notifier) and not notifier.name_given:
            notifier.name = name
        found.append(notifier)
    warnings.extend(_unique_names(found))
    return found, failures, warnings


def _unique_names(notifiers: Iterable[Any]) -> list[str]:
    """Give unnamed duplicates ``<name>-2``, ``<name>-3``… in order (0.8 configurations
    often have several MailNotifiers); a notifier's name keys its position in the event
    stream, so the warning asks for explicit names."""
    warnings: list[str] = []
    taken: set[str] = set()
    for notifier in notifiers:
        if not isinstance(notifier, Notifier):
            continue
        if notifier.name not in taken:
            taken.add(notifier.name)
            continue
        base, n = notifier.name, 2
        while f"{base}-{n}" in taken:
            n += 1
        if notifier.name_given:
            # explicitly named twice: the daemon refuses two consumers of one name
            continue
        notifier.name = f"{base}-{n}"
        taken.add(notifier.name)
        warnings.append(f"two notifiers are named {base!r}: the later one runs as "
                        f"{notifier.name!r}; give each its own name= so reordering "
                        "c['status'] keeps their places in the event stream")
    return warnings


def bind_notifiers(consumers: Iterable[Any], db: Any, cfg: Any) -> None:
    """Hand each :class:`Notifier` among ``consumers`` the status database and the
    configuration (before any event is dispatched)."""
    for consumer in consumers:
        if isinstance(consumer, Notifier):
            consumer.bind(db, cfg)
