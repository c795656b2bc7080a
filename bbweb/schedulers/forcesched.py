"""``buildbot.schedulers.forcesched``."""

from bbweb.config.schedulers import ForceScheduler

__all__ = ["ForceScheduler"]
