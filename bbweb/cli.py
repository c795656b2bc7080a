"""The ``bbweb`` command: create, check, upgrade and run a master, run a worker, send a
change.

Each sub-command imports what it needs when it runs: ``bbweb worker`` (a worker host may
have the full package installed) imports nothing of the master (Flask, SQLAlchemy, the
configuration), only :mod:`bbweb.worker`, which needs ``requests`` alone.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bbweb import __version__
from bbweb.worker.cli import add_arguments as worker_arguments

if TYPE_CHECKING:
    from bbweb.mastercfg.errors import ConfigErrors


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)


def cmd_create_master(args: argparse.Namespace) -> int:
    from bbweb.scaffold import create_master

    try:
        created = create_master(Path(args.basedir), port=args.port, force=args.force)
    except FileExistsError as exc:
        print(f"bbweb: {exc}", file=sys.stderr)
        return 1
    for path in created:
        print(f"created {path}")
    return cmd_upgrade_master(args)


def cmd_upgrade_master(args: argparse.Namespace) -> int:
    from bbweb.db.connection import Database, DatabaseUnreachable, check_connection, display_url
    from bbweb.db.migrate import upgrade
    from bbweb.engine.builders import sync_builders
    from bbweb.mastercfg.errors import ConfigErrors
    from bbweb.mastercfg.master import load_master_config
    from bbweb.scaffold import refresh_public_html
    from bbweb.web.static_files import BUILTIN

    try:
        cfg = load_master_config(args.basedir)
    except ConfigErrors as exc:
        _print_errors(exc)
        return 1
    try:
        check_connection(cfg.db_url)
    except DatabaseUnreachable as exc:
        print(f"bbweb: {exc}", file=sys.stderr)
        return 1
    revision = upgrade(cfg.db_url)
    db = Database(cfg.db_url)
    try:
        with db.write() as conn:
            sync_builders(conn, cfg)
    finally:
        db.dispose()
    print(f"database {display_url(cfg.db_url)} is at schema revision {revision}")
    refreshed, kept = refresh_public_html(Path(args.basedir), cfg.web.public_html)
    for path in refreshed:
        print(f"refreshed {path} (an unedited copy of an older bbweb's)")
    if kept:
        print(f"left as edited here, not refreshed: {', '.join(str(p) for p in kept)} "
              f"(bbweb's current ones are in {BUILTIN})")
    return 0


def _unreachable_database(basedir: str, *, create: bool) -> str | None:
    """One line saying why ``basedir``'s database cannot be connected to, or None when it
    can. Checked before starting anything, so that a server that is down, a wrong password
    or a missing database is told in one line rather than a driver traceback. A master.cfg
    with errors gives None here: the command goes on to report those its own way."""
    from bbweb.db.connection import DatabaseUnreachable, check_connection
    from bbweb.mastercfg.errors import ConfigErrors
    from bbweb.mastercfg.master import load_master_config

    try:
        cfg = load_master_config(basedir)
    except ConfigErrors:
        return None
    try:
        check_connection(cfg.db_url, create=create)
    except DatabaseUnreachable as exc:
        return f"bbweb: {exc}"
    return None


def _print_errors(exc: ConfigErrors) -> None:
    print("bbweb: the configuration has errors:", file=sys.stderr)
    for err in exc.errors:
        print(f"  {err}", file=sys.stderr)


def configuration_problems(basedir: str) -> tuple[list[str], list[str], list[str]]:
    """What ``bbweb checkconfig`` reports and what keeps ``bbweb start`` from starting:
    (warnings, errors in master.cfg and plugins.toml, enabled plugins that cannot be
    used), every line naming the file and line to fix."""
    from bbweb.mastercfg.errors import ConfigErrors
    from bbweb.mastercfg.master import MasterConfig, load_master_config
    from bbweb.plugins.loading import enabled_dialects, load_auth, load_change_hooks, load_pages
    from bbweb.plugins.notifiers.loading import load_notifiers
    from bbweb.plugins.registry import PluginSettings, enabled_at, load_plugin_settings
    from bbweb.web.change_hook import option_problems

    errors: list[str] = []
    cfg: MasterConfig | None = None
    settings: PluginSettings | None = None
    try:
        cfg = load_master_config(basedir)
    except ConfigErrors as exc:
        errors.extend(exc.errors)
    try:
        settings = load_plugin_settings(basedir)
    except ConfigErrors as exc:
        errors.extend(exc.errors)
    if cfg is None or settings is None:
        return [], errors, []
    warnings = list(cfg.warnings)
    _hooks, failures = load_change_hooks(cfg, settings)
    # a bad framework option (max_body_size, allow_properties) falls back to the safe
    # default at run time; checkconfig says so
    dialects = enabled_dialects(cfg.web.change_hook_dialects, settings.section("change_hooks"))
    for name, options in dialects.items():
        for problem in option_problems(name, options):
            failures.setdefault(f"change_hooks.{name}", problem.split(": ", 1)[-1])
    failures.update(load_pages(cfg, settings)[1])
    failures.update(load_auth(cfg, settings, basedir)[1])
    _notifiers, notifier_failures, notifier_warnings = load_notifiers(cfg, settings)
    failures.update(notifier_failures)
    warnings.extend(notifier_warnings)
    problems = []
    for key, message in sorted(failures.items()):
        section, _, name = key.partition(".")
        where = enabled_at(section, name, settings, cfg)
        problems.append(f"{where}: {key}: {message}" if where else f"{key}: {message}")
    return warnings, errors, problems


def _report_problems(errors: list[str], problems: list[str]) -> bool:
    """Print configuration errors and unusable plugins; True if there were any."""
    from bbweb.mastercfg.errors import ConfigErrors

    if errors:
        _print_errors(ConfigErrors(errors))
    if problems:
        print("bbweb: plugins that cannot be used:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
    return bool(errors or problems)


def _missing_database_driver(basedir: str) -> str | None:
    """One line when the configured database's driver cannot be imported, else None."""
    from bbweb.db.connection import DatabaseUnreachable, check_driver
    from bbweb.mastercfg.master import load_master_config

    try:
        check_driver(load_master_config(basedir).db_url)
    except DatabaseUnreachable as exc:
        return f"bbweb: {exc}"
    return None


def cmd_checkconfig(args: argparse.Namespace) -> int:
    warnings, errors, problems = configuration_problems(args.basedir)
    for warning in warnings:
        print(f"warning: {warning}")
    if _report_problems(errors, problems):
        return 1
    if args.connect:
        from bbweb.db.connection import display_url
        from bbweb.mastercfg.master import load_master_config

        problem = _unreachable_database(args.basedir, create=False)
        if problem:
            print(problem, file=sys.stderr)
            return 1
        print(f"database {display_url(load_master_config(args.basedir).db_url)}: connected")
    else:
        # Without --connect nothing is contacted, but a database whose driver is not
        # installed (a postgresql URL on plain ``bbweb``) cannot work anywhere: say so now
        # rather than at start.
        problem = _missing_database_driver(args.basedir)
        if problem:
            print(problem, file=sys.stderr)
            return 1
    print("Config file is good!")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from bbweb.launcher import start

    # refuse to start what checkconfig refuses: nothing half-configured is run
    _warnings, errors, problems = configuration_problems(args.basedir)
    if _report_problems(errors, problems):
        return 1
    problem = _unreachable_database(args.basedir, create=True)  # start upgrades the schema
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return start(Path(args.basedir), local_worker=args.local_worker, workers=args.web_workers,
                 verbose=args.verbose)


def cmd_master(args: argparse.Namespace) -> int:
    from bbweb.daemon import run_daemon

    problem = _unreachable_database(args.basedir, create=False)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return run_daemon(str(Path(args.basedir).resolve()))


def cmd_worker(args: argparse.Namespace) -> int:
    from bbweb.worker.cli import run

    return run(args)


def _master_url(value: str) -> str:
    if "://" not in value:
        value = "http://" + value
    return value.rstrip("/")


def parse_properties(values: Sequence[str]) -> dict[str, object]:
    """``-p/--property`` values: ``NAME=VALUE`` (the value is a string; ``NAME:VALUE`` is
    accepted too), or a dict literal as post_build_request.py took it (``{'a': 1}``),
    parsed with ``ast.literal_eval``: literals only, never evaluated as code."""
    import ast

    properties: dict[str, object] = {}
    for prop in values:
        if prop.lstrip().startswith("{"):
            try:
                parsed = json.loads(prop)
            except ValueError:
                try:
                    parsed = ast.literal_eval(prop.strip())
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    raise ValueError(f"property {prop!r} is not a dict literal (use "
                                     "NAME=VALUE)") from None
            if not isinstance(parsed, dict) or not all(isinstance(k, str) for k in parsed):
                raise ValueError(f"property {prop!r} must be a dict of name -> value")
            try:
                json.dumps(parsed)
            except (TypeError, ValueError):
                raise ValueError(f"property {prop!r} has values JSON cannot carry") from None
            properties.update(parsed)
            continue
        if "=" in prop:
            key, _, value = prop.partition("=")
        elif ":" in prop:
            key, _, value = prop.partition(":")
        else:
            raise ValueError(f"property {prop!r} must be NAME=VALUE")
        if not key:
            raise ValueError(f"property {prop!r} has no name")
        properties[key] = value
    return properties


def sendchange_fields(args: argparse.Namespace) -> dict[str, str]:
    """The form fields ``bbweb sendchange`` posts (the base dialect's wire format)."""
    fields: dict[str, str] = {
        "author": args.who or getpass.getuser(),
        "comments": args.comments if args.comments is not None else "",
    }
    for name in ("revision", "branch", "category", "revlink", "repository", "project",
                 "codebase", "when"):
        value = getattr(args, name)
        if value is not None:
            fields[name] = str(value)
    files = list(args.file or []) + list(args.files or [])
    if files:
        fields["files"] = json.dumps(files)
    properties = parse_properties(args.property or [])
    if properties:
        fields["properties"] = json.dumps(properties)
    return fields


def cmd_sendchange(args: argparse.Namespace) -> int:
    from urllib.parse import urlencode

    import requests

    try:
        fields = sendchange_fields(args)
    except ValueError as exc:
        print(f"bbweb sendchange: {exc}", file=sys.stderr)
        return 2
    urlpath = args.urlpath if args.urlpath.startswith("/") else "/" + args.urlpath
    if args.testing:  # post_build_request.py -t: show what would be sent, send nothing
        print(f"params: {urlencode(fields)}")
        print(f"host: {args.master}")
        print(f"urlpath: {urlpath}")
        return 0
    url = _master_url(args.master) + urlpath
    auth = None
    if args.auth:
        user, _, password = args.auth.partition(":")
        auth = (user, password)
    try:
        resp = requests.post(url, data=fields, auth=auth, timeout=30,
                             headers={"Accept": "text/plain"})
    except requests.RequestException as exc:
        print(f"bbweb sendchange: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    if args.sendchange_verbose >= 1:
        print(f"{resp.status_code} {resp.reason}")
    if args.sendchange_verbose >= 2:
        print(f"Raw response: {resp.text}")
    if resp.status_code == 202:
        print("change sent successfully")
        return 0
    print(f"bbweb sendchange: the master answered {resp.status_code}: {resp.text.strip()}",
          file=sys.stderr)
    return 1


def cmd_statuslog(args: argparse.Namespace) -> int:
    from bbweb.statuslog import run

    return run(args)


def _top_parser() -> tuple[argparse.ArgumentParser, Any]:
    parser = argparse.ArgumentParser(prog="bbweb", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"bbweb {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser, parser.add_subparsers(dest="command", required=True)


def _add_worker(sub: Any) -> None:
    p = sub.add_parser("worker", help="run a worker that builds for a master (on a host "
                       "with only the worker installed: bbweb-worker)")
    worker_arguments(p)
    p.set_defaults(func=cmd_worker)


def worker_parser() -> argparse.ArgumentParser:
    """``bbweb`` with the worker sub-command alone: what ``bbweb worker`` parses with, so
    that it imports nothing of the master (:func:`build_parser` does)."""
    parser, sub = _top_parser()
    _add_worker(sub)
    return parser


def build_parser() -> argparse.ArgumentParser:
    from bbweb.launcher import DEFAULT_WEB_WORKERS

    parser, sub = _top_parser()

    p = sub.add_parser("create-master", help="write a sample master.cfg and plugins.toml and "
                       "create the database")
    p.add_argument("basedir")
    p.add_argument("--port", type=int, default=8010, help="web port (default 8010)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=cmd_create_master)

    p = sub.add_parser("upgrade-master", help="create or upgrade the status database")
    p.add_argument("basedir")
    p.set_defaults(func=cmd_upgrade_master)

    p = sub.add_parser("checkconfig", help="check master.cfg and plugins.toml")
    p.add_argument("basedir", nargs="?", default=".")
    p.add_argument("--connect", action="store_true",
                   help="also connect to the configured database (c['db_url'])")
    p.set_defaults(func=cmd_checkconfig)

    p = sub.add_parser("start", help="run web, daemon and a local worker in the foreground")
    p.add_argument("basedir")
    p.add_argument("--local-worker", default=None,
                   help="BuildSlave to run locally (default: 'local-worker' if configured; "
                        "'none' to run no worker)")
    p.add_argument("--web-workers", type=int, default=DEFAULT_WEB_WORKERS,
                   help=f"gunicorn processes (default {DEFAULT_WEB_WORKERS})")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("master", help="run the master daemon (timers, liveness, notifiers)")
    p.add_argument("basedir")
    p.set_defaults(func=cmd_master)

    _add_worker(sub)

    p = sub.add_parser(
        "sendchange", help="send a change to a master's base change hook",
        description="Send one change to /change_hook/base. Takes the options of Buildbot's "
                    "contrib/post_build_request.py under the same names (-H/--host, "
                    "-u/--urlpath, -w/--who, -f/--file, -c/--comments, -R/--revision, "
                    "-W/--when, -b/--branch, -C/--category, --revlink, -p/--property, "
                    "-r/--repository, -P/--project, -v/--verbose, -t/--testing); "
                    "see docs/compat.md.")
    p.add_argument("-H", "--host", "--master", dest="master", default="localhost:8010",
                   help="the master: host[:port] or a URL (default localhost:8010)")
    p.add_argument("-u", "--urlpath", default="/change_hook/base",
                   help="path of the change hook (default /change_hook/base)")
    p.add_argument("-w", "--who", "--author", dest="who",
                   help="the change's author (default: your login name)")
    p.add_argument("-f", "--file", action="append",
                   help="a file the change touches (repeatable; positional FILES too)")
    p.add_argument("-c", "-m", "--comments", dest="comments", help="the change's comments")
    p.add_argument("-R", "--revision")
    p.add_argument("-W", "--when", type=float, help="seconds since the epoch")
    p.add_argument("-b", "--branch")
    p.add_argument("-C", "--category")
    p.add_argument("--revlink")
    p.add_argument("-r", "--repository")
    p.add_argument("-P", "--project")
    p.add_argument("--codebase")
    p.add_argument("-p", "--property", action="append",
                   help="NAME=VALUE (repeatable; a {'name': value} dict literal is parsed "
                        "as a literal, never evaluated)")
    p.add_argument("--auth", help="USER:PASSWORD for change_hook_auth")
    p.add_argument("-v", "--verbose", dest="sendchange_verbose", action="count", default=0,
                   help="print the answer's status (twice: also its body)")
    p.add_argument("-t", "--testing", action="store_true",
                   help="print what would be sent and send nothing")
    p.add_argument("files", nargs="*")
    p.set_defaults(func=cmd_sendchange)

    from bbweb.statuslog import add_arguments as statuslog_arguments

    p = sub.add_parser("statuslog", help="print a master's builder, build and step events "
                       "as they happen (Buildbot's 'buildbot statuslog', over /json/events)")
    statuslog_arguments(p)
    p.set_defaults(func=cmd_statuslog)

    from bbweb.auth.cli import add_parsers as add_auth_parsers  # user, badge-token
    add_auth_parsers(sub)
    return parser


def _subcommand(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names: its first argument that is not an option (the
    top-level options take no values)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = worker_parser() if _subcommand(argv) == "worker" else build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
