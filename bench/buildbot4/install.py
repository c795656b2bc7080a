"""Install Buildbot 4 (master, worker, web UI) into a virtualenv of its own, for the
side-by-side figures of ``bench/perf.py``.

Buildbot is never a dependency of bbweb: it goes into its own virtualenv (``--venv``,
default ``/tmp/bbweb-perf/buildbot4-venv``, where ``bench/perf.py`` looks for it), made
with this interpreter's ``venv`` module and filled by pip from the package index pip is
configured for. ``buildbot-www`` is needed because Buildbot 4 serves its REST API and
change hooks only with its web application installed. A virtualenv that already holds the
asked version is left as it is.

    .venv/bin/python bench/buildbot4/install.py                  # buildbot 4.3.0
    .venv/bin/python bench/buildbot4/install.py --venv DIR --version 4.3.0
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import venv as venv_module
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bb4  # noqa: E402

DEFAULT = Path(os.environ.get("BBWEB_PERF_CACHE", "/tmp/bbweb-perf")) / "buildbot4-venv"
PACKAGES = ("buildbot", "buildbot-worker", "buildbot-www")


def install(path: Path, version: str) -> str:
    """Buildbot ``version`` in the virtualenv at ``path`` (made if missing); its version."""
    env = bb4.Venv(path.resolve())
    if env.version() == version:
        return version
    if not (path / "bin" / "python").exists():
        venv_module.EnvBuilder(with_pip=True).create(path)
    subprocess.run([env.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *[f"{p}=={version}" for p in PACKAGES]], check=True)
    found = env.version()
    if found != version:
        raise SystemExit(f"pip ran, but {path} has buildbot {found}, not {version}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT, help=f"default {DEFAULT}")
    parser.add_argument("--version", default="4.3.0")
    args = parser.parse_args(argv)
    print(f"Buildbot {install(args.venv, args.version)} in {args.venv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
