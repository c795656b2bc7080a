"""``buildbot.steps.source.git``."""

from bbweb.config.steps import Git

__all__ = ["Git"]
