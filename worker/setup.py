"""Packaging for ``bbweb-worker``: the worker alone, for build hosts.

Built from the same source tree as ``bbweb`` (``../bbweb``), it installs only
``bbweb/__init__.py`` and ``bbweb/worker/`` and needs only ``requests``: no Flask,
SQLAlchemy, gunicorn or database driver on a machine that only runs builds. It gives the
``bbweb-worker`` command (the options of ``bbweb worker``)::

    pip install ./worker              # from a checkout of the repository

It is the worker that the full ``bbweb`` package contains too: install one or the other
in an environment, not both (they hold the same files).
"""

import re
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "bbweb"
VERSION = re.search(r'^__version__ = "([^"]+)"', (SOURCE / "__init__.py").read_text(),
                    re.M).group(1)


class BuildWorkerOnly(build_py):
    """Of the ``bbweb`` package itself take only ``__init__.py``: its other modules are
    the master's."""

    def find_package_modules(self, package, package_dir):  # type: ignore[no-untyped-def]
        modules = super().find_package_modules(package, package_dir)
        if package == "bbweb":
            modules = [m for m in modules if m[1] == "__init__"]
        return modules


setup(
    name="bbweb-worker",
    version=VERSION,
    description="The bbweb worker alone: claims builds from a bbweb master over HTTP and "
                "runs their steps",
    license="Apache-2.0",
    license_files=["LICENSE"],
    packages=["bbweb", "bbweb.worker"],
    # relative to this directory, so that an in-tree build (pip >= 21.3) finds the sources
    package_dir={"bbweb": "../bbweb", "bbweb.worker": "../bbweb/worker"},
    cmdclass={"build_py": BuildWorkerOnly},
    python_requires=">=3.11",
    install_requires=["requests>=2.28"],
    entry_points={"console_scripts": ["bbweb-worker = bbweb.worker.cli:main"]},
)
