"""Packaging for bbweb.

Built-in plugins register through the same entry-point groups a third-party package uses,
so the plugin interface is exercised by the core every day.

Install variants (README, "Installing"):

* ``pip install .`` — the master (web, daemon, worker, tools) on SQLite;
* ``pip install '.[postgresql]'`` — the same plus the PostgreSQL driver;
* ``pip install ./worker`` — a build host: the ``bbweb-worker`` distribution
  (``worker/setup.py``), the worker alone with only ``requests``.

Requirements here are lower bounds; ``constraints.txt`` pins the versions the project is
tested with (``scripts/venv.sh`` installs with it, ``scripts/lock.sh`` refreshes it).
"""

from setuptools import find_packages, setup

setup(
    name="bbweb",
    version="0.1.0",
    description="Buildbot-style CI status web and build coordinator as a Flask WSGI service",
    license="Apache-2.0",
    license_files=["LICENSE"],
    packages=find_packages(include=["bbweb", "bbweb.*"]),
    include_package_data=True,
    package_data={"bbweb": ["templates/**/*", "static/**/*", "db/migrations/**/*",
                            "config/*.tmpl"]},
    python_requires=">=3.11",
    install_requires=[
        "flask>=3.0",
        "sqlalchemy>=2.0",
        "alembic>=1.12",
        "gunicorn>=21",
        "requests>=2.28",
        "flask-login>=0.6",
        "libpass>=1.9",
        "bcrypt>=4",
        "irc>=20.0",
    ],
    extras_require={
        "postgresql": ["psycopg[binary]>=3.1"],
        "test": ["pytest>=7", "ruff>=0.4", "playwright>=1.40", "hypothesis>=6", "feedparser>=6",
                 "wheel", "aiosmtpd>=1.4", "mypy>=1.10", "types-passlib", "types-gunicorn"],
    },
    entry_points={
        "console_scripts": ["bbweb = bbweb.cli:main",
                            "bbweb-worker = bbweb.worker.cli:main"],
        "bbweb.change_hooks": [
            "base = bbweb.plugins.hooks.base:BaseHook",
            "github = bbweb.plugins.hooks.github:GitHubHook",
            "gitlab = bbweb.plugins.hooks.gitlab:GitLabHook",
            "bitbucket = bbweb.plugins.hooks.bitbucket:BitbucketHook",
            "googlecode = bbweb.plugins.hooks.googlecode:GoogleCodeHook",
            "poller = bbweb.plugins.hooks.poller:PollerHook",
        ],
        "bbweb.notifiers": [
            "mail = bbweb.plugins.notifiers.mail:MailNotifier",
            "gerrit = bbweb.plugins.notifiers.gerrit:GerritStatusPush",
            "statuspush = bbweb.plugins.notifiers.status_push:StatusPush",
            "httpstatuspush = bbweb.plugins.notifiers.status_push:HttpStatusPush",
            "github = bbweb.plugins.notifiers.github:GitHubStatus",
            "irc = bbweb.plugins.notifiers.irc:IRC",
        ],
        "bbweb.auth": [
            "basic = bbweb.auth.backends:BasicAuth",
            "htpasswd = bbweb.auth.backends:HTPasswdAuth",
            "htpasswdapr = bbweb.auth.backends:HTPasswdAprAuth",
            "users = bbweb.auth.backends:UsersAuth",
        ],
        "bbweb.pages": [],
    },
)
