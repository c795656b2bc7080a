"""``bbweb-worker`` (and ``bbweb worker``): run a worker that builds for a master.

A worker host needs nothing of the master: this module, like the rest of
``bbweb.worker``, imports only the standard library, ``requests`` and
``bbweb.__version__``. That is what lets the ``bbweb-worker`` distribution (``worker/``
at the top of the repository) install the worker with ``requests`` alone. ``bbweb
worker`` in the full package takes the same options from here. The worker itself
(:mod:`bbweb.worker.main`) is imported when it runs, so that ``bbweb --help`` does not
load it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from bbweb import __version__

PASSWORD_VAR = "BBWEB_WORKER_PASSWORD"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The worker's options, for ``bbweb-worker`` and for ``bbweb worker``."""
    parser.add_argument("--master", required=True, help="the master's URL, e.g. http://ci:8010")
    parser.add_argument("--name", required=True, help="the BuildSlave name")
    parser.add_argument("--password", help=f"the BuildSlave password (or {PASSWORD_VAR})")
    parser.add_argument("--basedir", required=True, help="directory to build in")


def run(args: argparse.Namespace, prog: str = "bbweb worker") -> int:
    """Run the worker the parsed options describe until it is stopped; the exit code."""
    from bbweb.worker.main import run_worker

    password = args.password
    if password is None:
        password = os.environ.get(PASSWORD_VAR)
    if password is None:
        print(f"{prog}: give --password or set {PASSWORD_VAR}", file=sys.stderr)
        return 2
    return run_worker(args.master, args.name, password, args.basedir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bbweb-worker",
        description="Run a bbweb worker: claim builds from a master over HTTP(S) and run "
                    "their steps. Same as 'bbweb worker'.")
    parser.add_argument("--version", action="version", version=f"bbweb-worker {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return run(args, prog="bbweb-worker")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
