"""``buildbot.status.client`` for master.cfg: ``PBListener``, which bbweb refuses with a
sentence pointing at the live status stream (:mod:`bbweb.mastercfg.pblistener`)."""

from bbweb.mastercfg.pblistener import PBListener

__all__ = ["PBListener"]
