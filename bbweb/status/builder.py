"""Buildbot 0.8's ``buildbot.status.builder`` path for the result codes
(``from bbweb.status.builder import SUCCESS, Results``); they live in
:mod:`bbweb.values.results`."""

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
