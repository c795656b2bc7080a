"""gunicorn's settings for a bare ``gunicorn wsgi:app`` run here, at the top of a checkout.

gunicorn reads ``./gunicorn.conf.py`` from the directory it is started in. This one makes
``gunicorn wsgi:app`` serve the way ``bbweb start`` does: the same settings
(:func:`bbweb.launcher.gunicorn_settings`: threaded workers, timeouts, ``http.log``),
bound to the master's ``WebStatus(http_port=...)`` (and ``distrib_port``), read from
its master.cfg. The master is the one the application itself will serve
(:func:`bbweb.app.default_basedir`): ``$BBWEB_BASEDIR``, else the working directory if it
holds a master.cfg, else ``./master``. Options given on gunicorn's command line still win
over these.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bbweb.app import default_basedir
from bbweb.db.connection import DatabaseUnreachable, check_driver
from bbweb.launcher import DEFAULT_LISTEN, DEFAULT_WEB_WORKERS, gunicorn_settings, webstatus_of
from bbweb.mastercfg.errors import ConfigErrors
from bbweb.mastercfg.master import load_master_config


def _serving_directory() -> Path:
    """The working directory the application will have: gunicorn reads this file before
    it applies a ``--chdir`` from its command line (or ``GUNICORN_CMD_ARGS``), so look for
    one the way gunicorn will."""
    from gunicorn.config import Config

    config = Config()
    chdir = None
    for args in (config.get_cmd_args_from_env(), sys.argv[1:]):
        try:
            known, _rest = config.parser().parse_known_args(args)
        except SystemExit:  # not gunicorn's command line (gunicorn embedded elsewhere)
            continue
        chdir = known.chdir or chdir
    return Path(chdir or ".").resolve()


def _settings() -> dict[str, object]:
    basedir = Path(default_basedir(_serving_directory())).resolve()
    try:
        web = webstatus_of(basedir)
        if (basedir / "master.cfg").exists():
            # a missing database driver is told here, in one line, not by each web process
            check_driver(load_master_config(basedir).db_url)
    except ConfigErrors as exc:
        lines = "\n".join(f"  {err}" for err in exc.errors)
        raise SystemExit(f"bbweb: the configuration has errors:\n{lines}") from None
    except DatabaseUnreachable as exc:
        raise SystemExit(f"bbweb: {exc}") from None
    return gunicorn_settings(basedir, web.listen or DEFAULT_LISTEN, DEFAULT_WEB_WORKERS, web)


globals().update(_settings())
