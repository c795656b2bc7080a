"""``buildbot.status.results``: the result codes a user's notifier callback compares with.

Buildbot 0.8 kept them in ``status/results.py`` and re-exported them from
``status/builder.py``; both import paths work here (``bbweb.status.builder`` is where the
rest of bbweb reads them from). CANCELLED (6) did not exist in 0.8; bbweb records it for
builds cancelled before they ran, and ``Results[6]`` names it.
"""

from bbweb.values.results import (
    CANCELLED,
    EXCEPTION,
    FAILURE,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
    Results,
    result_name,
    worst_status,
)

__all__ = ["CANCELLED", "EXCEPTION", "FAILURE", "RETRY", "Results", "SKIPPED", "SUCCESS",
           "WARNINGS", "result_name", "worst_status"]
