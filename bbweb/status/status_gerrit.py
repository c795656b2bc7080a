"""``buildbot.status.status_gerrit`` for master.cfg:
``from bbweb.status.status_gerrit import GerritStatusPush``.

The notifier lives with the other notifier plugins (:mod:`bbweb.plugins.notifiers.gerrit`,
registered as the ``gerrit`` entry point of ``bbweb.notifiers``); this module keeps 0.8's
import path, its default callbacks and the names 0.8's module offered alongside them.
"""

from bbweb.plugins.notifiers.gerrit import GerritStatusPush
from bbweb.plugins.notifiers.gerrit_ssh import (
    VERSION_CACHE_SECONDS as GERRIT_VERSION_CACHE_TIMEOUT,
)
from bbweb.plugins.notifiers.gerrit_texts import (
    DEFAULT_REVIEW,
    DEFAULT_SUMMARY,
    defaultReviewCB,
    defaultSummaryCB,
)
from bbweb.status.results import (
    EXCEPTION,
    FAILURE,
    RETRY,
    SUCCESS,
    WARNINGS,
    Results,
)

__all__ = ["DEFAULT_REVIEW", "DEFAULT_SUMMARY", "EXCEPTION", "FAILURE",
           "GERRIT_VERSION_CACHE_TIMEOUT", "GerritStatusPush", "RETRY", "Results", "SUCCESS",
           "WARNINGS", "defaultReviewCB", "defaultSummaryCB"]
