"""gunicorn entry point: ``gunicorn wsgi:app``.

The master's basedir comes from ``BBWEB_BASEDIR`` (default ``./master``)."""

from bbweb.app import serving_app

app = serving_app()
