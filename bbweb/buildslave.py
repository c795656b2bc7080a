"""Buildbot's ``buildbot.buildslave`` path: ``from bbweb.buildslave import BuildSlave``."""

from bbweb.mastercfg.builders import BuildSlave

__all__ = ["BuildSlave"]
