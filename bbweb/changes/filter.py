"""``buildbot.changes.filter``."""

from bbweb.mastercfg.schedulers import ChangeFilter

__all__ = ["ChangeFilter"]
