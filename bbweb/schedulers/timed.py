"""``buildbot.schedulers.timed``."""

from bbweb.config.schedulers import Nightly, Periodic

__all__ = ["Nightly", "Periodic"]
