"""gunicorn entry point: ``gunicorn wsgi:app`` (basedir from ``BBWEB_BASEDIR``, default ./master)."""

from bbweb.app import create_app

app = create_app()
