"""GerritStatusPush's default callbacks and the build summaries a summary callback gets.

A review callback answers ``(message, verified, reviewed)``: the text posted on the
change, and the Verified and Code-Review votes (0 = no vote). A message of None posts
nothing. The defaults say what Buildbot 0.8's said, word for word, so reviews look the same
after moving a master over.
"""

from __future__ import annotations

from typing import Any

from bbweb.values.results import EXCEPTION, FAILURE, RETRY, SUCCESS, WARNINGS, Results

RESULT_TEXTS = {SUCCESS: "succeeded", FAILURE: "failed", WARNINGS: "completed with warnings",
                EXCEPTION: "encountered an exception"}


class DEFAULT_REVIEW:  # noqa: N801 (0.8's name)
    """Marks ``reviewCB`` as not given (passing None disables it; see GerritStatusPush)."""


class DEFAULT_SUMMARY:  # noqa: N801 (0.8's name)
    """Marks ``summaryCB`` as not given."""


def _result_word(result: Any) -> str:
    if isinstance(result, int) and 0 <= result < len(Results):
        return Results[result]
    return str(result)


def defaultReviewCB(builderName: str, build: Any, result: Any, status: Any, arg: Any
                    ) -> tuple[str | None, int, int]:
    """A build finished: say which configuration and how; Verified +1 for SUCCESS, -1
    otherwise; nothing for a build that will be retried."""
    if result == RETRY:
        return None, 0, 0
    message = (f"Buildbot finished compiling your patchset\non configuration: {builderName}\n"
               f"The result is: {_result_word(result).upper()}\n")
    return message, 1 if result == SUCCESS else -1, 0


def defaultSummaryCB(buildInfoList: list[dict[str, Any]], results: Any, status: Any,
                     arg: Any) -> tuple[str, int, int]:
    """A buildset finished: one paragraph per build; Verified +1 only when every build
    succeeded (warnings count as failure)."""
    paragraphs = []
    for info in buildInfoList:
        text = f"Builder {info['name']} {info['resultText']} ({info['text']})"
        paragraphs.append(text + (f" - {info['url']}" if info.get("url") else "."))
    passed = bool(buildInfoList) and all(i["result"] == SUCCESS for i in buildInfoList)
    return "\n\n".join(paragraphs), 1 if passed else -1, 0


def build_info(build: Any, master_status: Any) -> dict[str, Any]:
    """What a summary callback learns about one build of the buildset."""
    result = build.getResults()
    text = RESULT_TEXTS.get(result, f"completed with unknown result {result}")
    return {"name": build.getBuilder().getName(), "result": result, "resultText": text,
            "text": " ".join(build.getText()), "url": master_status.getURLForThing(build)}


__all__ = ["DEFAULT_REVIEW", "DEFAULT_SUMMARY", "RESULT_TEXTS", "build_info",
           "defaultReviewCB", "defaultSummaryCB"]
