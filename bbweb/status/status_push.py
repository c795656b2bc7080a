"""``buildbot.status.status_push`` for master.cfg:
``from bbweb.status.status_push import HttpStatusPush``.

The notifiers live with the other notifier plugins
(:mod:`bbweb.plugins.notifiers.status_push`, registered as the ``statuspush`` and
``httpstatuspush`` entry points of ``bbweb.notifiers``); this module keeps 0.8's import
path for configurations.
"""

from bbweb.plugins.notifiers.status_push import HttpStatusPush, StatusPush

__all__ = ["HttpStatusPush", "StatusPush"]
