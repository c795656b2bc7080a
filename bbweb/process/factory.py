"""``buildbot.process.factory``."""

from bbweb.config.steps import BuildFactory

__all__ = ["BuildFactory"]
