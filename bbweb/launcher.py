"""``bbweb start``: web (gunicorn), daemon and a local worker as one foreground command.

This module checks the master, upgrades its database and works out what to run (gunicorn's
settings, where the daemon runs, the local worker); :mod:`bbweb.supervisor`, which this
process becomes, runs it: it is gunicorn's arbiter, the daemon runs in the web process (or
in its own with several web processes) and the worker is a child process, as it would run
on another host.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from bbweb.db.migrate import upgrade
from bbweb.mastercfg.errors import ConfigErrors
from bbweb.mastercfg.master import MasterConfig, load_master_config
from bbweb.mastercfg.webstatus import ListenAddress, WebStatus
from bbweb.supervisor import DAEMON_IN_WEB, DAEMON_PROCESS, PLAN_VAR, Plan
from bbweb.web.accesslog import MAX_ROTATED_FILES_VAR, ROTATE_LENGTH_VAR
from bbweb.web.events import STREAM_SLOTS_VAR

DEFAULT_LISTEN = ListenAddress("127.0.0.1", 8010)
PAGE_THREADS = 16  # threads of each web process for pages, the API and worker long-polls
STREAM_SLOTS = 200  # live status streams (/json/events) each web process serves at once
# one process of 16 threads: a second process would double the web's memory (each holds
# Flask, SQLAlchemy and the configuration) for throughput a small master rarely needs
DEFAULT_WEB_WORKERS = 1
LOCAL_WORKER = "local-worker"
MALLOC_ARENA_VAR, MALLOC_ARENAS = "MALLOC_ARENA_MAX", "2"
# gunicorn's control socket (gunicorn 25.1 and later), one per master
CONTROL_SOCKET = Path("run") / "gunicorn.ctl"
_MAX_UNIX_PATH = 107  # bytes a UNIX socket's path may have on Linux (sun_path less its NUL)


def _gunicorn_knows(setting: str) -> bool:
    """Whether the installed gunicorn has ``setting`` (setup.py allows gunicorn 21, which
    refuses settings it does not know)."""
    try:
        from gunicorn.config import KNOWN_SETTINGS
    except ImportError:
        return False
    return any(s.name == setting for s in KNOWN_SETTINGS)


def control_socket_settings(basedir: Path) -> dict[str, Any]:
    """gunicorn's control socket (for ``gunicornc``) in ``BASEDIR/run/``. gunicorn's own
    default is one fixed path per user (``$XDG_RUNTIME_DIR`` or ``~/.gunicorn``), which two
    masters on one host, or parallel test runs, would take from each other. Disabled where
    the basedir's path is too long for a UNIX socket; nothing for a gunicorn without it."""
    if not _gunicorn_knows("control_socket"):
        return {}
    path = basedir.resolve() / CONTROL_SOCKET
    if len(os.fsencode(str(path))) > _MAX_UNIX_PATH:
        return {"control_socket_disable": True}
    return {"control_socket": str(path)}


def gunicorn_settings(basedir: Path, listen: ListenAddress, workers: int,
                      web: WebStatus | None = None) -> dict[str, Any]:
    """How bbweb's web processes run under gunicorn, as gunicorn setting names (what a
    ``gunicorn.conf.py`` assigns): threads, since worker long-polls hold a thread each,
    not a process.

    ``web`` is the master's WebStatus (read from ``basedir``'s master.cfg when not given):
    its ``distrib_port`` becomes a second bind and its ``logRotateLength`` and
    ``maxRotatedFiles`` govern ``http.log``, written by :mod:`bbweb.web.accesslog`.
    gunicorn's control socket goes in ``BASEDIR/run/`` (:func:`control_socket_settings`).
    Each process has :data:`PAGE_THREADS` threads for pages plus :data:`STREAM_SLOTS`
    for live status streams (``BBWEB_STREAM_SLOTS``).
    ``bbweb start`` passes these as command-line options (:func:`gunicorn_command`); the
    repository's ``gunicorn.conf.py`` gives the same to a bare ``gunicorn wsgi:app``.
    """
    basedir = Path(basedir)
    if web is None:
        web = webstatus_of(basedir)
    binds = [listen.bind()]
    if web.distrib is not None:
        binds.append(web.distrib.bind(basedir.resolve()))
    return {
        "bind": binds,
        "workers": max(1, workers),
        "worker_class": "gthread",
        # a live stream holds a thread while it is open: the pool is that much larger,
        # and bbweb.web.events takes at most STREAM_SLOTS of it (docs/deployment.md)
        "threads": PAGE_THREADS + STREAM_SLOTS,
        "timeout": 90,
        "graceful_timeout": 10,
        "accesslog": str(basedir / "http.log"),
        "logger_class": "bbweb.web.accesslog.AccessLogger",
        "raw_env": [f"{ROTATE_LENGTH_VAR}={web.logRotateLength}",
                    f"{MAX_ROTATED_FILES_VAR}={web.maxRotatedFiles}",
                    f"{STREAM_SLOTS_VAR}={STREAM_SLOTS}"],
        "errorlog": "-",
        **control_socket_settings(basedir),
    }


# gunicorn's command-line option for each setting name gunicorn_settings uses
_GUNICORN_OPTIONS = {
    "bind": "--bind", "workers": "--workers", "worker_class": "--worker-class",
    "threads": "--threads", "timeout": "--timeout", "graceful_timeout": "--graceful-timeout",
    "accesslog": "--access-logfile", "logger_class": "--logger-class", "raw_env": "--env",
    "errorlog": "--error-logfile", "control_socket": "--control-socket",
    "control_socket_disable": "--no-control-socket",
}


def gunicorn_command(basedir: Path, listen: ListenAddress, workers: int,
                     web: WebStatus | None = None) -> list[str]:
    """The gunicorn command ``bbweb start`` runs: :func:`gunicorn_settings` as options,
    serving ``bbweb.app:serving_app()`` from inside ``basedir``."""
    basedir = Path(basedir)
    options: list[str] = []
    for name, value in gunicorn_settings(basedir, listen, workers, web).items():
        if isinstance(value, bool):  # a flag
            options += [_GUNICORN_OPTIONS[name]] if value else []
            continue
        for item in value if isinstance(value, list) else [value]:
            options += [_GUNICORN_OPTIONS[name], str(item)]
    return [sys.executable, "-m", "gunicorn", *options, "--chdir", str(basedir),
            "bbweb.app:serving_app()"]


def webstatus_of(basedir: Path) -> WebStatus:
    """The WebStatus of basedir's master.cfg; defaults when there is no master.cfg."""
    if not (basedir / "master.cfg").exists():
        return WebStatus()
    return load_master_config(basedir).web


def master_url(listen: ListenAddress) -> str:
    host = listen.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{listen.port}"


def _local_worker(cfg: MasterConfig, wanted: str | None) -> str | None:
    if wanted == "none":
        return None
    if wanted is not None:
        if wanted not in cfg.slaves:
            raise ConfigErrors([f"--local-worker {wanted!r} is not a BuildSlave in "
                                f"{cfg.path}"])
        return wanted
    return LOCAL_WORKER if LOCAL_WORKER in cfg.slaves else None


def start(basedir: Path, local_worker: str | None = None,
          workers: int = DEFAULT_WEB_WORKERS, verbose: bool = False) -> int:
    """Run everything for one machine until Ctrl-C. After checking the configuration and
    upgrading the database, this process *becomes* :mod:`bbweb.supervisor` (``exec``: the
    same process id, a fresh interpreter without what the checks loaded), so it returns
    only when the configuration has errors (1)."""
    basedir = basedir.resolve()
    try:
        cfg = load_master_config(basedir)
        worker_name = _local_worker(cfg, local_worker)
    except ConfigErrors as exc:
        print("bbweb: the configuration has errors:", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err}", file=sys.stderr)
        return 1
    upgrade(cfg.db_url)
    listen = cfg.web.listen or DEFAULT_LISTEN
    children: list[tuple[str, list[str], dict[str, str]]] = []
    if worker_name:
        children.append(("worker", [sys.executable, "-m", "bbweb.cli", "worker",
                                    "--master", master_url(listen), "--name", worker_name,
                                    "--basedir", str(basedir / "workers" / worker_name)],
                         {"BBWEB_WORKER_PASSWORD": cfg.slaves[worker_name].password}))
    banner = [f"bbweb is running at {master_url(listen)}/ "
              f"(web, daemon{', worker ' + worker_name if worker_name else ''}); "
              "press Ctrl-C to stop"]
    if cfg.web.distrib is not None:
        banner.append(f"bbweb: the site is also served at {cfg.web.distrib.bind(basedir)} "
                      "(distrib_port)")
    # one web process also runs the daemon (one interpreter instead of two); with several,
    # the daemon has its own, which no web process's replacement pauses
    plan = Plan(gunicorn_settings(basedir, listen, workers, cfg.web), children,
                daemon=DAEMON_IN_WEB if max(1, workers) == 1 else DAEMON_PROCESS,
                banner=banner, verbose=verbose)
    env = dict(os.environ, BBWEB_BASEDIR=str(basedir), PYTHONUNBUFFERED="1")
    # glibc gives each thread that allocates its own heap arena, up to 8 per core: the
    # daemon's and gunicorn's threads would each keep one, mostly empty
    env.setdefault(MALLOC_ARENA_VAR, MALLOC_ARENAS)
    env[PLAN_VAR] = plan.to_json()
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(basedir)
    os.execve(sys.executable, [sys.executable, "-m", "bbweb.supervisor", str(basedir)], env)
