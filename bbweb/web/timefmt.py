"""How times and durations read on the pages: one format per purpose, always server-local
time, and the timezone is always visible somewhere on the page (the footer).

The formats are Buildbot 0.8's, so screenshots and habits carry over.
"""

from __future__ import annotations

import time


def _local(ts: float) -> time.struct_time:
    return time.localtime(ts)


def tz_name(ts: float | None = None) -> str:
    """The server's timezone abbreviation at ``ts`` (e.g. ``UTC``, ``CEST``)."""
    return time.strftime("%Z", _local(time.time() if ts is None else ts))


def full_time(ts: float | None) -> str:
    """``Tue 04 Jun 2013 14:03:11``: page footer, change pages."""
    return "?" if ts is None else time.strftime("%a %d %b %Y %H:%M:%S", _local(ts))


def line_time(ts: float | None) -> str:
    """``Jun 04 14:03``: build tables."""
    return "" if ts is None else time.strftime("%b %d %H:%M", _local(ts))


def pending_time(ts: float | None) -> str:
    """``Jun 04 14:03:11``: pending build requests."""
    return "" if ts is None else time.strftime("%b %d %H:%M:%S", _local(ts))


def ctime(ts: float | None) -> str:
    """``Tue Jun  4 14:03:11 2013``: build and step start/end."""
    return "" if ts is None else time.ctime(ts)


def slave_time(ts: float | None) -> str:
    """``2013-Jun-04 14:03:11``: when a buildslave was last heard from."""
    return "" if ts is None else time.strftime("%Y-%b-%d %H:%M:%S", _local(ts))


def clock(ts: float | None) -> str:
    """``14:03:11``: the waterfall's time column."""
    return "" if ts is None else time.strftime("%H:%M:%S", _local(ts))


def duration(seconds: float | None) -> str:
    """``1 hrs, 2 mins, 5 secs``: the hours part only past an hour, minutes past a minute."""
    if seconds is None:
        return ""
    seconds = max(int(round(seconds)), 0)
    parts = []
    if seconds > 3600:
        parts.append(f"{seconds // 3600} hrs")
        seconds %= 3600
        parts.append(f"{seconds // 60} mins")
    elif seconds > 60:
        parts.append(f"{seconds // 60} mins")
    parts.append(f"{seconds % 60} secs")
    return ", ".join(parts)


def age(ts: float | None, now: float | None = None) -> str:
    """``about 3 hours ago``: how long since ``ts``, in words."""
    if ts is None:
        return ""
    delta = max((time.time() if now is None else now) - ts, 0)

    def phrase(n: float, unit: str, about: bool = True) -> str:
        count = int(n)
        words = f"{count} {unit}{'' if count == 1 else 's'} ago"
        return f"about {words}" if about else words

    if delta <= 90:
        return phrase(delta, "second", about=False)
    if delta < 90 * 60:
        return phrase(delta / 60, "minute")
    if delta < 86400:
        return phrase(delta / 3600, "hour")
    if delta < 14 * 86400:
        return phrase(delta / 86400, "day")
    if delta < 60 * 86400:
        return phrase(delta / (7 * 86400), "week")
    return "a long time ago"
