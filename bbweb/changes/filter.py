"""``buildbot.changes.filter``."""

from bbweb.config.schedulers import ChangeFilter

__all__ = ["ChangeFilter"]
