"""``buildbot.steps.source``."""

from bbweb.mastercfg.steps import Git

__all__ = ["Git"]
