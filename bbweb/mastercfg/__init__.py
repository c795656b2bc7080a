"""The objects a master.cfg builds (builders, slaves, steps, schedulers, properties, the web
status and its Authz) and the loader that reads and checks master.cfg.

master.cfg itself imports them through :mod:`bbweb.config` (``from bbweb.config import *``)
or Buildbot 0.8's paths; the rest of bbweb imports them from here, so that importing one of
these modules never imports what master.cfg's namespace gathers from the layers above.
"""
