"""``buildbot.schedulers.timed``."""

from bbweb.mastercfg.schedulers import Nightly, Periodic

__all__ = ["Nightly", "Periodic"]
