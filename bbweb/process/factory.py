"""``buildbot.process.factory``."""

from bbweb.mastercfg.steps import BuildFactory

__all__ = ["BuildFactory"]
