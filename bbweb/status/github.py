"""``buildbot.status.github`` for master.cfg: ``from bbweb.status.github import
GitHubStatus``.

The notifier lives with the other notifier plugins (:mod:`bbweb.plugins.notifiers.github`,
registered as the ``github`` entry point of ``bbweb.notifiers``); this module keeps 0.8's
import path for configurations.
"""

from bbweb.plugins.notifiers.github import GitHubStatus

__all__ = ["GitHubStatus"]
