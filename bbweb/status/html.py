"""Buildbot 0.8's ``buildbot.status.html`` path (``from bbweb.status.html import
WebStatus``); the web status target lives in :mod:`bbweb.mastercfg.webstatus`."""

from bbweb.mastercfg.webstatus import Waterfall, WebStatus

__all__ = ["Waterfall", "WebStatus"]
