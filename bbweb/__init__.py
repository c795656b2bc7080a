"""bbweb: the classic Buildbot status experience as a Flask WSGI service."""

__version__ = "0.1.0"
