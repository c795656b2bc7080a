"""``buildbot.schedulers.basic``."""

from bbweb.mastercfg.schedulers import AnyBranchScheduler, Scheduler, SingleBranchScheduler

__all__ = ["AnyBranchScheduler", "Scheduler", "SingleBranchScheduler"]
