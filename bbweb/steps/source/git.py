"""``buildbot.steps.source.git``."""

from bbweb.mastercfg.steps import Git

__all__ = ["Git"]
