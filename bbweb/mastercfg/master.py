"""Loading ``BASEDIR/master.cfg`` into one validated :class:`MasterConfig`.

The file is Python (``c = BuildmasterConfig = {}``) because Buildbot's documented options take
callables. Everything that can be checked before anything runs is checked here, and every
message names the file and line to fix.
"""

from __future__ import annotations

import ast
import os
import re
import sys
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bbweb.db.connection import default_db_url, normalize_db_url
from bbweb.mastercfg.builders import BuilderConfig, BuildSlave
from bbweb.mastercfg.errors import (
    ConfigErrors,
    Location,
    collecting_errors,
    pop_config_file,
    push_config_file,
)
from bbweb.mastercfg.forcefields import DEFAULT_VALIDATION
from bbweb.mastercfg.interfaces import Poller, is_consumer
from bbweb.mastercfg.planned import unavailable_target_message
from bbweb.mastercfg.schedulers import BaseScheduler, ForceScheduler, _ChangeScheduler
from bbweb.mastercfg.webstatus import WebStatus

CONFIG_FILENAME = "master.cfg"

KNOWN_KEYS = {
    "title", "titleURL", "projectName", "projectURL", "buildbotURL", "db_url", "db",
    "slaves", "builders", "schedulers", "change_source", "status", "revlink", "properties",
    "caches", "codebaseGenerator", "changeHorizon", "buildHorizon", "logHorizon",
    "eventHorizon", "logCompressionLimit", "logCompressionMethod", "logMaxSize",
    "logMaxTailSize", "mergeRequests", "prioritizeBuilders", "validation",
    "user_managers", "multiMaster", "metrics", "debugPassword", "manhole", "protocols",
    "slavePortnum", "buildCacheSize", "changeCacheSize",
}
# Buildbot keys that configure the Twisted master itself and mean nothing here, and keys
# bbweb does not act on yet (codebaseGenerator, mergeRequests): accepted with a warning so
# a migrated master.cfg loads and says what it loses.
IGNORED_KEYS = {"slavePortnum", "protocols", "manhole", "debugPassword", "multiMaster",
                "user_managers", "buildCacheSize", "changeCacheSize", "eventHorizon",
                "prioritizeBuilders", "logHorizon", "buildHorizon", "changeHorizon",
                "logMaxSize", "logMaxTailSize", "logCompressionMethod",
                "codebaseGenerator", "mergeRequests"}
# Arguments of Buildbot's objects that bbweb accepts but does not act on yet.
INERT_BUILDER_ARGS = ("env", "nextSlave", "mergeRequests", "locks")


@dataclass
class MasterConfig:
    """Everything master.cfg says, checked and with defaults filled in."""

    basedir: str
    path: str
    title: str = "Buildbot"
    titleURL: str = "http://buildbot.net/"
    buildbotURL: str = "http://localhost:8010/"
    db_url: str = ""
    slaves: dict[str, BuildSlave] = field(default_factory=dict)
    builders: dict[str, BuilderConfig] = field(default_factory=dict)
    schedulers: dict[str, BaseScheduler] = field(default_factory=dict)
    change_sources: list[Any] = field(default_factory=list)
    status: list[Any] = field(default_factory=list)
    revlink: Any = None
    validation: dict[str, re.Pattern[str]] = field(
        default_factory=lambda: {k: re.compile(v) for k, v in DEFAULT_VALIDATION.items()})
    properties: dict[str, Any] = field(default_factory=dict)
    caches: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    logCompressionLimit: int = 4096
    warnings: list[str] = field(default_factory=list)

    @property
    def web(self) -> WebStatus:
        """The (first) WebStatus, or a default one: the web app always has options."""
        for target in self.status:
            if isinstance(target, WebStatus):
                return target
        return WebStatus()

    def builders_for_slave(self, slavename: str) -> list[str]:
        return [b.name for b in self.builders.values() if slavename in b.slavenames]

    def schedulers_for_builder(self, buildername: str) -> list[str]:
        return [s.name for s in self.schedulers.values() if buildername in s.builderNames]

    @property
    def build_cache_size(self) -> int:
        return int(self.caches.get("Builds", 15))


def _where(obj: Any) -> Location | None:
    return getattr(obj, "location", None)


def _exec_config(path: Path, basedir: Path, errors: ConfigErrors) -> dict[str, Any] | None:
    """Run master.cfg and return its BuildmasterConfig.

    Bad arguments of configuration objects are added to ``errors`` as the file runs (see
    :func:`~bbweb.mastercfg.errors.argument_error`), so all of them are reported together.
    None when the file could not run to its end; ``errors`` then says why.
    """
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        errors.add(f"configuration file {path} does not exist "
                   "(create one with 'bbweb create-master BASEDIR')")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        errors.add(f"cannot read {path}: {exc}")
        return None
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        errors.add(f"syntax error: {exc.msg}", Location(str(path), exc.lineno or 0))
        return None
    namespace: dict[str, Any] = {"__file__": str(path), "__name__": "__bbweb_master_cfg__",
                                 "basedir": str(basedir)}
    sys.path.insert(0, str(basedir))
    push_config_file(str(path))
    try:
        with collecting_errors(errors):
            exec(code, namespace)
    except ConfigErrors as exc:  # a problem after which the file could not go on
        errors.extend(exc)
        return None
    except Exception as exc:
        lineno = 0
        for frame in traceback.extract_tb(exc.__traceback__):
            if os.path.abspath(frame.filename) == str(path):
                lineno = frame.lineno or 0
        message = _explain_exception(exc, source, lineno)
        errors.add(message, Location(str(path), lineno))
        return None
    finally:
        pop_config_file()
        try:
            sys.path.remove(str(basedir))
        except ValueError:
            pass
    cfg = namespace.get("BuildmasterConfig")
    if cfg is None:
        errors.add(f"{path}: no BuildmasterConfig defined (start with "
                   "'c = BuildmasterConfig = {}')")
        return None
    if not isinstance(cfg, dict):
        errors.add(f"{path}: BuildmasterConfig must be a dict")
        return None
    return cfg


def _explain_exception(exc: Exception, source: str, lineno: int) -> str:
    """The message for an exception master.cfg raised: a plain sentence for an import of a
    Buildbot status target bbweb does not have yet, else the exception itself."""
    if isinstance(exc, ImportError | AttributeError):
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            tree = None
        message = unavailable_target_message(exc, tree, lineno)
        if message:
            return message
    return f"error while executing the configuration: {type(exc).__name__}: {exc}"


def _assignment_line(path: Path, key: str) -> Location | None:
    """Where master.cfg assigns or extends ``c[key]`` (for errors about a value that
    carries no location of its own)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for lineno, line in enumerate(lines, 1):
        if f"[{key!r}]" in line or f'["{key}"]' in line:
            return Location(str(path), lineno)
    return None


# What cannot be a change source: a value, a class that was not instantiated, a function.
_NOT_SOURCES = (str, bytes, int, float, dict, list, tuple, set, frozenset, type(None), type,
                types.FunctionType, types.BuiltinFunctionType, types.ModuleType)


def _change_sources(value: Any, errors: ConfigErrors, warnings: list[str], path: Path
                    ) -> list[Any]:
    """``c['change_source']``: one change source or a list of them. Pollers
    (:class:`~bbweb.mastercfg.interfaces.Poller`) need distinct names; another object is
    only shown on the pages (its ``describe()``), with a warning that nothing polls it."""
    items = list(value) if isinstance(value, list | tuple) else [value]
    sources: list[Any] = []
    seen: dict[str, Any] = {}
    for item in items:
        if isinstance(item, _NOT_SOURCES):
            errors.add(f"c['change_source'] contains {type(item).__name__} {item!r:.60}, "
                       "expected a change source such as GitPoller(...) or SVNPoller(...) "
                       "(changes pushed by repositories come in through /change_hook or "
                       "'bbweb sendchange')",
                       _where(item) or _assignment_line(path, "change_source"))
            continue
        if not isinstance(item, Poller):
            warnings.append(f"{path}: c['change_source'] contains {type(item).__name__}, "
                            "which is not a poller (GitPoller, SVNPoller, or a subclass of "
                            "bbweb.changes.PollingChangeSource): it is listed on the pages, "
                            "but nothing polls it")
            sources.append(item)
            continue
        if item.name in seen:
            errors.add(f"two change sources are named {item.name!r} (the first at "
                       f"{_where(seen[item.name]) or path}); give one of them its own "
                       "name=", _where(item))
            continue
        seen[item.name] = item
        sources.append(item)
    return sources


def _idle_status_targets(targets: list[Any], path: Path) -> list[str]:
    """Warnings for objects in c['status'] that nothing will run: neither a WebStatus nor
    an event consumer (Buildbot's own status receivers have no equivalent here)."""
    return [f"{_where(t) or path}: c['status'] contains {type(t).__name__}, which is "
            "neither a WebStatus nor an event consumer (an object with consumer_name and "
            "handle_event): nothing runs it"
            for t in targets if not isinstance(t, WebStatus) and not is_consumer(t)]


def _inert_arguments(cfg: MasterConfig) -> list[str]:
    """Warnings for arguments given in master.cfg that bbweb accepts but ignores."""
    def at(obj: Any) -> str:
        where = _where(obj)
        return f"{where}: " if where else f"{cfg.path}: "

    warnings = []
    for builder in cfg.builders.values():
        for arg in INERT_BUILDER_ARGS:
            if getattr(builder, arg, None):
                warnings.append(f"{at(builder)}builder {builder.name!r}: {arg}= has no "
                                "effect in bbweb yet")
    for sched in cfg.schedulers.values():
        if isinstance(sched, _ChangeScheduler) and sched.onlyImportant:
            warnings.append(f"{at(sched)}scheduler {sched.name!r}: onlyImportant= has no "
                            "effect in bbweb yet (unimportant changes are built with the "
                            "next important one)")
        if sched.codebases is not None and not isinstance(sched, ForceScheduler):
            warnings.append(f"{at(sched)}scheduler {sched.name!r}: codebases= has no "
                            "effect in bbweb yet")
    for slave in cfg.slaves.values():
        if slave.notify_on_missing:
            warnings.append(f"{at(slave)}BuildSlave {slave.name!r}: notify_on_missing= "
                            "sends no mail (bbweb has no MailNotifier yet)")
    return warnings


def load_master_config(basedir: str | os.PathLike[str],
                       filename: str = CONFIG_FILENAME) -> MasterConfig:
    """Execute and validate BASEDIR/master.cfg; raise :class:`ConfigErrors` listing every
    problem found (not just the first)."""
    base = Path(basedir).resolve()
    path = (base / filename).resolve()
    errors = ConfigErrors()
    raw = _exec_config(path, base, errors)
    if raw is None:
        raise errors
    # the file ran to its end: check how its parts fit together too, and report those
    # problems along with the bad arguments found while it ran
    return build_master_config(raw, base, path, errors)


def _check_validation(value: Any, cfg: MasterConfig, errors: ConfigErrors,
                      where: str) -> None:
    """c['validation']: a dict of the four pattern names to regexes (strings or compiled);
    the ones not given keep Buildbot's defaults."""
    if not isinstance(value, dict):
        errors.add(f"{where}: c['validation'] must be a dict of "
                   f"{', '.join(DEFAULT_VALIDATION)} -> regular expression")
        return
    for key, pattern in value.items():
        if key not in DEFAULT_VALIDATION:
            errors.add(f"{where}: c['validation'] has an unknown key {key!r} (known: "
                       f"{', '.join(DEFAULT_VALIDATION)})")
            continue
        if isinstance(pattern, re.Pattern):
            cfg.validation[key] = pattern
            continue
        try:
            cfg.validation[key] = re.compile(pattern)
        except (re.error, TypeError) as exc:
            errors.add(f"{where}: c['validation'][{key!r}] is not a regular expression: {exc}")


def build_master_config(raw: dict[str, Any], basedir: Path, path: Path,
                        errors: ConfigErrors | None = None) -> MasterConfig:
    """Validate a BuildmasterConfig dict (already executed); raise :class:`ConfigErrors`
    with these problems added to ``errors`` (those found while executing it).

    In phases, every one run so that one pass reports every problem: the keys; the site's
    values (titles, URLs, the database); the global settings; the slaves, builders and
    schedulers; the names they use of each other; the change sources; the status
    targets."""
    errors = errors if errors is not None else ConfigErrors()
    where = str(path)
    cfg = MasterConfig(basedir=str(basedir), path=where)
    _check_keys(raw, cfg, errors, where)
    _site_values(raw, cfg, errors, where, basedir)
    _global_settings(raw, cfg, errors, where)
    _named_objects(raw, cfg, errors, where)
    _cross_references(cfg, errors)
    cfg.warnings.extend(_inert_arguments(cfg))
    cfg.change_sources = _change_sources(raw.get("change_source", []), errors, cfg.warnings,
                                         path)
    _status_targets(raw, cfg, errors, path)
    if errors:
        raise errors
    return cfg


def _check_keys(raw: dict[str, Any], cfg: MasterConfig, errors: ConfigErrors,
                where: str) -> None:
    """Unknown keys are errors; keys bbweb ignores are warnings."""
    for key in raw:
        if key not in KNOWN_KEYS:
            errors.add(f"{where}: unknown configuration key c[{key!r}]")
        elif key in IGNORED_KEYS:
            cfg.warnings.append(f"{where}: c[{key!r}] has no effect in bbweb and is ignored")


def _site_values(raw: dict[str, Any], cfg: MasterConfig, errors: ConfigErrors, where: str,
                 basedir: Path) -> None:
    """The titles, the site's URL and the database URL."""
    for key in ("title", "titleURL", "projectName", "projectURL", "buildbotURL", "db_url"):
        if key in raw and raw[key] is not None and not isinstance(raw[key], str):
            errors.add(f"{where}: c[{key!r}] must be a string, not {type(raw[key]).__name__}")
    cfg.title = raw.get("title") or raw.get("projectName") or cfg.title
    cfg.titleURL = raw.get("titleURL") or raw.get("projectURL") or cfg.titleURL
    url = raw.get("buildbotURL") or cfg.buildbotURL
    if isinstance(url, str) and not url.endswith("/"):
        url += "/"
    cfg.buildbotURL = url

    db_url = raw.get("db_url")
    if db_url is None and isinstance(raw.get("db"), dict):
        db_url = raw["db"].get("db_url")
    cfg.db_url = normalize_db_url(db_url, basedir) if isinstance(db_url, str) \
        else default_db_url(basedir)


def _global_settings(raw: dict[str, Any], cfg: MasterConfig, errors: ConfigErrors,
                     where: str) -> None:
    """properties, caches, logCompressionLimit, metrics, validation, revlink."""
    props = raw.get("properties", {})
    if not isinstance(props, dict):
        errors.add(f"{where}: c['properties'] must be a dict")
    else:
        cfg.properties = dict(props)
    caches = raw.get("caches", {})
    if not isinstance(caches, dict) or not all(isinstance(v, int) for v in caches.values()):
        errors.add(f"{where}: c['caches'] must be a dict of name -> integer")
    else:
        cfg.caches = dict(caches)
    if "logCompressionLimit" in raw:
        limit = raw["logCompressionLimit"]
        if limit is False:
            cfg.logCompressionLimit = 0
        elif isinstance(limit, int) and limit >= 0:
            cfg.logCompressionLimit = limit
        else:
            errors.add(f"{where}: c['logCompressionLimit'] must be a non-negative integer "
                       "or False")
    cfg.metrics = raw.get("metrics")
    _check_validation(raw.get("validation", {}), cfg, errors, where)
    cfg.revlink = raw.get("revlink")
    if cfg.revlink is not None and not callable(cfg.revlink):
        errors.add(f"{where}: c['revlink'] must be callable (e.g. a RevlinkMatch)")


def _named_objects(raw: dict[str, Any], cfg: MasterConfig, errors: ConfigErrors,
                   where: str) -> None:
    """c['slaves'], c['builders'], c['schedulers']: each of the right class, each name
    once."""
    for key, typ, label in (("slaves", BuildSlave, "BuildSlave"),
                            ("builders", BuilderConfig, "BuilderConfig"),
                            ("schedulers", BaseScheduler, "scheduler")):
        items = raw.get(key, [])
        if not isinstance(items, list | tuple):
            errors.add(f"{where}: c[{key!r}] must be a list")
            continue
        target: dict[str, Any] = getattr(cfg, key)
        for item in items:
            if isinstance(item, dict) and key == "builders":
                errors.add(f"{where}: c['builders'] entries must be BuilderConfig(...) objects;"
                           " dict-style builders are not supported")
                continue
            if not isinstance(item, typ):
                errors.add(f"{where}: c[{key!r}] contains {type(item).__name__}, "
                           f"expected a {label}")
                continue
            if not isinstance(item.name, str) or not item.name:
                continue  # its constructor has reported the name already
            if item.name in target:
                errors.add(f"duplicate {label} name {item.name!r} (first defined at "
                           f"{_where(target[item.name]) or where})", _where(item))
                continue
            target[item.name] = item


def _cross_references(cfg: MasterConfig, errors: ConfigErrors) -> None:
    """Builders name known slaves and have builddirs of their own; schedulers name known
    builders."""
    for builder in cfg.builders.values():
        for slavename in builder.slavenames:
            if slavename not in cfg.slaves:
                errors.add(f"builder {builder.name!r} uses unknown slave {slavename!r}",
                           _where(builder))
    builddirs: dict[str, str] = {}
    for builder in cfg.builders.values():
        other = builddirs.setdefault(builder.builddir, builder.name)
        if other != builder.name:
            errors.add(f"builder {builder.name!r} has the same builddir {builder.builddir!r} "
                       f"as builder {other!r}", _where(builder))
    for sched in cfg.schedulers.values():
        for bname in sched.builderNames:
            if bname not in cfg.builders:
                errors.add(f"scheduler {sched.name!r} names unknown builder {bname!r}",
                           _where(sched))


def _status_targets(raw: dict[str, Any], cfg: MasterConfig, errors: ConfigErrors,
                    path: Path) -> None:
    """c['status']: a list, no two WebStatus on one port, and a warning for each target
    nothing runs."""
    where = str(path)
    status = raw.get("status", [])
    if not isinstance(status, list | tuple):
        errors.add(f"{where}: c['status'] must be a list")
        status = []
    ports: dict[Any, WebStatus] = {}
    for target in status:
        if isinstance(target, WebStatus) and target.listen is not None:
            if target.listen.port in ports:
                errors.add(f"two WebStatus objects have the same port {target.http_port!r}",
                           _where(target))
            ports[target.listen.port] = target
    cfg.status = list(status)
    cfg.warnings.extend(_idle_status_targets(cfg.status, path))
