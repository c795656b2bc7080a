"""``buildbot.status.words`` for master.cfg: ``from bbweb.status import words``;
``c['status'].append(words.IRC(host, nick, channels, ...))``.

The bot itself lives with the other notifier plugins (:mod:`bbweb.plugins.notifiers.irc`,
registered as the ``irc`` entry point of ``bbweb.notifiers``); this module keeps 0.8's
import path for configurations.
"""

from bbweb.plugins.notifiers.irc import IRC

__all__ = ["IRC"]
