"""``buildbot.steps.source``."""

from bbweb.config.steps import Git

__all__ = ["Git"]
