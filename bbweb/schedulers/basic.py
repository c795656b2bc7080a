"""``buildbot.schedulers.basic``."""

from bbweb.config.schedulers import AnyBranchScheduler, Scheduler, SingleBranchScheduler

__all__ = ["AnyBranchScheduler", "Scheduler", "SingleBranchScheduler"]
