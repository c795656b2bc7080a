"""gunicorn entry point: ``gunicorn wsgi:app`` at the top of a checkout.

The master served is ``$BBWEB_BASEDIR``; else the working directory if it holds a
master.cfg; else ``./master`` (:func:`bbweb.app.default_basedir`). ``gunicorn.conf.py``
beside this file gives gunicorn the settings ``bbweb start`` uses and the master's
``http_port`` (docs/deployment.md, "Running gunicorn yourself")."""

from bbweb.app import serving_app

app = serving_app()
