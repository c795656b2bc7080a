"""What the IRC bot says: Buildbot 0.8's announcement texts, mIRC colours, durations, and
making any text safe to put on one IRC line.

Everything that comes from a build (its text, branch, revisions, change authors, builder
names) went onto the wire unfiltered in 0.8, so a commit author containing a line break
could make the bot send an IRC command of the author's choosing, and ``\\x01`` could make
it send CTCP requests. Here every such text goes through :func:`clean` (control
characters out, one line) and every message through :func:`fit` (cut to what one IRC line
can carry) before it reaches the connection.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from bbweb.values.results import EXCEPTION, FAILURE, RETRY, SUCCESS, WARNINGS

# mIRC palette (0.8's names)
WHITE, BLACK, NAVY_BLUE, GREEN, RED, BROWN, PURPLE, OLIVE = range(8)
YELLOW, LIME_GREEN, TEAL, AQUA_LIGHT, ROYAL_BLUE, HOT_PINK, DARK_GRAY, LIGHT_GRAY = \
    range(8, 16)

RESULT_WORDS = {SUCCESS: "Success", WARNINGS: "Warnings", FAILURE: "Failure",
                EXCEPTION: "Exception", RETRY: "Retry"}
RESULT_COLOURS = {SUCCESS: GREEN, WARNINGS: YELLOW, FAILURE: RED, EXCEPTION: PURPLE,
                  RETRY: AQUA_LIGHT}
# the lower-case names a contact can subscribe to
RESULT_EVENTS = {SUCCESS: "success", WARNINGS: "warnings", FAILURE: "failure",
                 EXCEPTION: "exception"}

# Bytes of text in one message. An IRC line is at most 512 bytes including the CR LF and
# the "PRIVMSG <target> :" the bot sends, and the server relays it with the bot's
# "nick!user@host" in front; 400 leaves room for long nicks, hosts and channel names.
MAX_TEXT_BYTES = 400
CUT_MARK = "..."

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def clean(text: object, limit: int | None = None) -> str:
    """``text`` as one printable line: every control character (CR, LF, ``\\x01`` of
    CTCP, mIRC formatting codes, C1 controls, Unicode line separators) becomes a space,
    format characters (bidi overrides, zero-width) are dropped; cut to ``limit``
    characters with ``...``."""
    s = str(text)
    s = _CONTROL.sub(" ", s)
    s = "".join(ch for ch in s if unicodedata.category(ch) != "Cf")
    if limit is not None and len(s) > limit:
        s = s[:max(0, limit - len(CUT_MARK))] + CUT_MARK
    return s


def fit(message: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """``message`` (already clean, possibly with our own colour codes) cut to
    ``max_bytes`` of UTF-8, at a character boundary, ending in ``...`` when cut. A colour
    left open by the cut is closed."""
    data = message.encode("utf-8")
    if len(data) <= max_bytes:
        return message
    room = max_bytes - len(CUT_MARK) - 1
    cut = data[:room].decode("utf-8", errors="ignore")
    if cut.count("\x03") % 2:
        cut += "\x03"
    return cut + CUT_MARK


def colour(text: str, code: int, use: bool) -> str:
    """0.8's wrapping: ``\\x03<n><text>\\x03``. A text starting with a digit would be read
    as part of the colour number by clients, so a comma-free two-digit code is used then."""
    if not use:
        return text
    number = f"{code:02d}" if text[:1].isdigit() else str(code)
    return f"\x03{number}{text}\x03"


def result_word(result: int | None) -> str:
    return RESULT_WORDS.get(result, "??") if result is not None else "??"


def result_colour(result: int | None) -> int:
    return RESULT_COLOURS.get(result, RED) if result is not None else RED


def duration(seconds: float) -> str:
    """0.8's durations: ``5 seconds``, ``5m03s``, ``1h05m03s``."""
    s = int(max(0, seconds))
    if s < 60:
        return f"{s} seconds"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m{s % 60:02d}s"


def short_revisions(revisions: Iterable[object]) -> str:
    """The revisions of a build's changes, each cut to 7 characters, joined by ", "."""
    return ", ".join(clean(r)[:7] for r in revisions if r)


def describe_build(builder: str, number: int, revisions: Sequence[object],
                   use_revisions: bool) -> str:
    """``#<n>`` or ``containing revision(s) [<revs>]`` (useRevisions)."""
    if use_revisions:
        return f"containing revision(s) [{short_revisions(revisions)}]"
    return f"#{number}"


def started_text(builder: str, number: int, revisions: Sequence[object],
                 use_revisions: bool) -> str:
    name = clean(builder, 100)
    if use_revisions:
        return (f"build containing revision(s) [{short_revisions(revisions)}] on {name} "
                "started")
    text = f"build #{number} of {name} started"
    revs = [clean(r, 40) for r in revisions if r]
    if revs:
        text += f" (including [{', '.join(revs[:2])}]"
        if len(revs) > 2:
            text += f" and {len(revs) - 2} more"
        text += ")"
    return text


def build_text(words: Iterable[object], result: int | None, use_colours: bool) -> str:
    text = clean(" ".join(str(w) for w in words), 200)
    return colour(text, result_colour(result), use_colours)


def finished_text(builder: str, number: int, result: int | None, words: Sequence[object],
                  revisions: Sequence[object], url: str | None, blamelist: Sequence[str],
                  *, use_revisions: bool, use_colours: bool, show_blame: bool) -> str:
    """The subscription announcement (one line)."""
    name = clean(builder, 100)
    if use_revisions:
        text = (f"build containing revision(s) [{short_revisions(revisions)}] on {name} is "
                f"complete: {result_word(result)}")
    else:
        text = f"build #{number} of {name} is complete: {result_word(result)}"
    text += f" [{build_text(words, result, use_colours)}]"
    if url:
        text += f"  Build details are at {clean(url, 200)}"
    if show_blame and result != SUCCESS and blamelist:
        text += "  blamelist: " + ", ".join(clean(who, 60) for who in blamelist)
    return fit(text)


def watched_text(builder: str, number: int, result: int | None, words: Sequence[object],
                 revisions: Sequence[object], *, use_revisions: bool,
                 use_colours: bool) -> str:
    """The first line for a build somebody watched or forced from IRC."""
    name = clean(builder, 100)
    what = describe_build(builder, number, revisions, use_revisions)
    return fit(f"Hey! build {name} {what} is complete: {result_word(result)} "
               f"[{build_text(words, result, use_colours)}]")
