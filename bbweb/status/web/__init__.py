"""Buildbot 0.8's ``buildbot.status.web`` module paths, so a migrated master.cfg's
``from bbweb.status.web.authz import Authz`` and ``from bbweb.status.web.auth import
BasicAuth`` keep working."""
