"""``buildbot.status.mail`` for master.cfg: ``from bbweb.status.mail import MailNotifier``.

The notifier itself lives with the other notifier plugins
(:mod:`bbweb.plugins.notifiers.mail`, registered as the ``mail`` entry point of
``bbweb.notifiers``); this module keeps 0.8's import path for configurations.
"""

from bbweb.plugins.notifiers.mail import MODES, MailNotifier
from bbweb.plugins.notifiers.mail_format import defaultMessage, htmlMessageFormatter
from bbweb.plugins.notifiers.mail_recipients import VALID_EMAIL, Domain
from bbweb.status.results import (
    EXCEPTION,
    FAILURE,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
    Results,
)

__all__ = ["Domain", "EXCEPTION", "FAILURE", "MODES", "MailNotifier", "RETRY", "Results",
           "SKIPPED", "SUCCESS", "VALID_EMAIL", "WARNINGS", "defaultMessage",
           "htmlMessageFormatter"]
