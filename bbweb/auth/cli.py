"""``bbweb user add|update|remove|list`` and ``bbweb badge-token``.

The users table is what ``UsersAuth()`` logs in against and what ``/users`` shows.
Passwords come from a prompt (``--ask-password``), standard input (``--password-stdin``)
or, for throwaway setups, ``--password`` (visible to other local users in ``ps``).

Like :mod:`bbweb.cli`, each command imports what it needs (the database, the migrations)
when it runs, for start-up time.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from bbweb.mastercfg.errors import ConfigErrors


def _default_basedir() -> str:
    return os.environ.get("BBWEB_BASEDIR", ".")


def _open_db(basedir: str) -> Any:
    from bbweb.db.connection import Database
    from bbweb.db.migrate import is_current
    from bbweb.mastercfg.master import load_master_config

    cfg = load_master_config(basedir)
    db = Database(cfg.db_url)
    if not is_current(db):
        db.dispose()
        raise RuntimeError(f"the status database for {basedir} is missing or out of date: "
                           f"run 'bbweb upgrade-master {basedir}'")
    return db


def _password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if args.ask_password:
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise ValueError("the passwords do not match")
        return first
    return args.password


def _attrs(pairs: list[str] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--attr {pair!r}: use TYPE=VALUE (e.g. git='Bob <bob@x>')")
        found[key] = value
    return found


def cmd_user(args: argparse.Namespace) -> int:
    from bbweb.auth import users
    from bbweb.status.users import get_user, list_users

    try:
        db = _open_db(args.basedir)
    except (ConfigErrors, RuntimeError) as exc:
        print(f"bbweb user: {exc}", file=sys.stderr)
        return 1
    try:
        if args.op == "list":
            after = 0
            while True:
                with db.read() as conn:
                    rows, more = list_users(conn, after=after)
                    for uid, _ident in rows:
                        u = get_user(conn, uid)
                        if u is None:
                            continue
                        extra = " ".join(f"{k}={v}" for k, v in sorted(u.attributes.items()))
                        print(f"{u.uid}\t{u.identifier}\t{u.bb_username or '-'}\t{extra}"
                              .rstrip())
                if not more:
                    break
                after = rows[-1][0]
            return 0
        if args.op == "remove":
            uid = users.remove_user(db, args.identifier)
            print(f"removed user {uid} ({args.identifier})")
            return 0
        password = _password(args)
        attrs = _attrs(args.attr)
        if args.op == "add":
            uid = users.add_user(db, args.identifier, bb_username=args.username,
                                 password=password, attrs=attrs)
            print(f"added user {uid} ({args.identifier})")
        else:
            uid = users.update_user(db, args.identifier, bb_username=args.username,
                                    password=password, attrs=attrs,
                                    identifier=args.new_identifier)
            print(f"updated user {uid} ({args.identifier})")
        return 0
    except ValueError as exc:  # UserError, bad --attr, mismatched passwords
        print(f"bbweb user {args.op}: {exc}", file=sys.stderr)
        return 1
    finally:
        db.dispose()


def cmd_badge_token(args: argparse.Namespace) -> int:
    from bbweb.auth.secret import load_or_create_secret
    from bbweb.auth.tokens import make_badge_token

    token = make_badge_token(load_or_create_secret(os.path.abspath(args.basedir)),
                             args.builder)
    print(token)
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``user`` and ``badge-token`` to the ``bbweb`` command's subparsers."""
    p = sub.add_parser("user", help="manage the users UsersAuth logs in against",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ops = p.add_subparsers(dest="op", required=True)
    for op, text in (("add", "add a user"), ("update", "change a user"),
                     ("remove", "delete a user"), ("list", "list the users")):
        q = ops.add_parser(op, help=text)
        q.add_argument("--basedir", "-d", default=_default_basedir(),
                       help="the master's basedir (default: $BBWEB_BASEDIR or .)")
        if op != "list":
            q.add_argument("identifier", help="the user's identifier"
                           + (" or login name" if op != "add" else ""))
        if op in ("add", "update"):
            q.add_argument("--username", help="the login name (default: the identifier "
                           "when a password is given)")
            q.add_argument("--password", help="the password (visible in ps: prefer "
                           "--ask-password or --password-stdin)")
            q.add_argument("--ask-password", action="store_true", help="prompt for it")
            q.add_argument("--password-stdin", action="store_true",
                           help="read it from the first line of standard input")
            q.add_argument("--attr", action="append", metavar="TYPE=VALUE",
                           help="an attribute, e.g. git='Bob <bob@example.org>' "
                                "(repeatable; TYPE= with no value removes it)")
        if op == "update":
            q.add_argument("--new-identifier", help="rename the user")
        q.set_defaults(func=cmd_user)

    p = sub.add_parser("badge-token", help="print the token that makes one builder's "
                       "status badge public on a private site (docs/security.md)")
    p.add_argument("basedir")
    p.add_argument("builder")
    p.set_defaults(func=cmd_badge_token)
