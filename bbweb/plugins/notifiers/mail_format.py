"""The texts of build mails: 0.8's default message, an HTML variant, and the subject.

:func:`defaultMessage` has 0.8's ``messageFormatter`` signature and produces 0.8's default
body line for line. Two things differ on purpose: a SKIPPED, RETRY or CANCELLED build gets
its own wording (0.8's formatter crashed on them), and "new failure"/"restored build"
compare with the same previous build the mode decision used (0.8 always took build N-1
there, even with a ``previousBuildGetter``).

:func:`htmlMessageFormatter` (a bbweb addition) says the same as HTML; every value it
shows is escaped, since authors, branches, comments and build text come from outside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from markupsafe import escape

from bbweb.values.results import (
    CANCELLED,
    EXCEPTION,
    FAILURE,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
    Results,
)

DEFAULT_SUBJECT = "buildbot %(result)s in %(title)s on %(builder)s"
PreviousGetter = Callable[[Any], Any]


def result_word(results: int | None) -> str:
    """``Results[results]``, or "unknown" for a value 0.8 did not have."""
    if isinstance(results, int) and 0 <= results < len(Results):
        return Results[results]
    return "unknown"


def _intro(mode: Sequence[str], results: int | None, previous: Any) -> str:
    prev_results = previous.getResults() if previous is not None else None
    if results == FAILURE:
        if ("change" in mode or "problem" in mode) and previous is not None \
                and prev_results != FAILURE:
            return "The Buildbot has detected a new failure"
        return "The Buildbot has detected a failed build"
    if results == WARNINGS:
        return "The Buildbot has detected a problem in the build"
    if results == SUCCESS:
        if "change" in mode and previous is not None and prev_results != results:
            return "The Buildbot has detected a restored build"
        return "The Buildbot has detected a passing build"
    if results == EXCEPTION:
        return "The Buildbot has detected a build exception"
    if results == SKIPPED:
        return "The Buildbot has detected a skipped build"
    if results == RETRY:
        return "The Buildbot has detected a build that will be retried"
    if results == CANCELLED:
        return "The Buildbot has detected a cancelled build"
    return "The Buildbot has detected a build with an unknown result"


def _summary(results: int | None, words: list[str]) -> str:
    detail = (": " + " ".join(words)) if words else ""
    if results == SUCCESS:
        return "Build succeeded!"
    if results == WARNINGS:
        return "Build Had Warnings" + detail
    if results == SKIPPED:
        return "Build Skipped" + detail
    if results == RETRY:
        return "Build Will Be Retried" + detail
    if results == CANCELLED:
        return "Build Cancelled" + detail
    return "BUILD FAILED" + detail


def projects_of(build: Any, master_status: Any) -> str:
    """The distinct non-empty projects of the build's source stamps, or the title."""
    seen: list[str] = []
    for ss in build.getSourceStamps():
        if ss.project and ss.project not in seen:
            seen.append(ss.project)
    return ", ".join(seen) if seen else master_status.getTitle()


def source_stamp_line(ss: Any) -> tuple[str, str]:
    """``(label, description)`` of one source stamp as 0.8 wrote it."""
    label = f"Build Source Stamp '{ss.codebase}'" if ss.codebase else "Build Source Stamp"
    text = f"[branch {ss.branch}] " if ss.branch else ""
    text += ss.revision if ss.revision else "HEAD"
    if ss.patch:
        text += " (plus patch)"
    return label, text


def render_default_message(mode: Sequence[str], name: str, build: Any, results: int | None,
                           master_status: Any, previous: Any) -> dict[str, str]:
    """0.8's default plain-text body, with ``previous`` the build compared with."""
    text = _intro(mode, results, previous)
    text += f" on builder {name} while building {projects_of(build, master_status)}."
    url = master_status.getURLForThing(build)
    if url:
        text += f" Full details are available at:\n    {url}\n"
    text += "\n"
    buildbot_url = master_status.getBuildbotURL()
    if buildbot_url:
        text += f"Buildbot URL: {quote(buildbot_url, '/:')}\n\n"
    text += f"Buildslave for this Build: {build.getSlavename()}\n\n"
    text += f"Build Reason: {build.getReason()}\n"
    for ss in build.getSourceStamps():
        label, desc = source_stamp_line(ss)
        text += f"{label}: {desc}\n"
    text += f"Blamelist: {','.join(build.getResponsibleUsers())}\n"
    text += "\n"
    text += _summary(results, build.getText()) + "\n"
    text += "\nSincerely,\n -The Buildbot\n\n"
    return {"body": text, "type": "plain"}


def defaultMessage(mode: Sequence[str], name: str, build: Any, results: int | None,
                   master_status: Any) -> dict[str, str]:
    """0.8's default ``messageFormatter``; the previous build is the last one that had
    finished when this one did (a MailNotifier passes its ``previousBuildGetter``'s)."""
    return render_default_message(mode, name, build, results, master_status,
                                  build.getPreviousFinishedBuild())


def render_html_message(mode: Sequence[str], name: str, build: Any, results: int | None,
                        master_status: Any, previous: Any) -> dict[str, str]:
    """The default message's content as an HTML page; every value is escaped."""
    rows: list[tuple[str, Any]] = []
    url = master_status.getURLForThing(build)
    intro = _intro(mode, results, previous)
    rows.append(("Builder", name))
    rows.append(("Project", projects_of(build, master_status)))
    rows.append(("Buildslave for this Build", build.getSlavename()))
    rows.append(("Build Reason", build.getReason()))
    for ss in build.getSourceStamps():
        rows.append(source_stamp_line(ss))
    rows.append(("Blamelist", ", ".join(build.getResponsibleUsers())))
    parts = [f"<p>{escape(intro)}.</p>"]
    if url:
        parts.append(f'<p>Full details are available at <a href="{escape(url)}">'
                     f"{escape(url)}</a></p>")
    parts.append("<table>")
    parts.extend(f"<tr><th align=\"left\">{escape(k)}:</th><td>{escape(v)}</td></tr>"
                 for k, v in rows)
    parts.append("</table>")
    changes = build.getChanges()
    if changes:
        parts.append("<h4>Changes</h4><ul>")
        for change in changes:
            parts.append(f"<li><b>{escape(change.who)}</b>: "
                         f"<pre>{escape(change.comments)}</pre></li>")
        parts.append("</ul>")
    parts.append(f"<p><b>{escape(_summary(results, build.getText()))}</b></p>")
    parts.append("<p>Sincerely,<br>&nbsp;-The Buildbot</p>")
    body = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
    return {"body": body, "type": "html"}


def htmlMessageFormatter(mode: Sequence[str], name: str, build: Any, results: int | None,
                         master_status: Any) -> dict[str, str]:
    """An HTML ``messageFormatter`` shipped with bbweb (not in 0.8)."""
    return render_html_message(mode, name, build, results, master_status,
                               build.getPreviousFinishedBuild())


# The formatters whose previous build the notifier supplies itself (its
# previousBuildGetter), instead of them asking the build.
BUILTIN_FORMATTERS: dict[Any, Callable[..., dict[str, str]]] = {
    defaultMessage: render_default_message,
    htmlMessageFormatter: render_html_message,
}
