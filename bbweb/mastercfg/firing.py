"""When the timed schedulers (``Periodic``, ``Nightly``) fire.

The daemon's ``tick`` (:mod:`bbweb.engine.schedulers`) and the pages' "upcoming builds"
(:mod:`bbweb.status.upcoming`) share these rules, so a page predicts exactly what the daemon
will do. Each timed scheduler keeps one ``scheduler_state`` row, ``LAST_FIRED``: Periodic
the time it last fired (seconds), Nightly the local minute it last fired in
(:func:`nightly_minute_key`).
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Iterator
from typing import Any

from bbweb.mastercfg.schedulers import Nightly, Periodic

LAST_FIRED = "last_fired"
_SEARCH_YEARS = 50  # a cron schedule with no time in this many years never fires
# more than any daylight-saving (or other) step of local time
_MAX_CLOCK_STEP = datetime.timedelta(hours=3)


def periodic_due(sched: Periodic, last_fired: Any, now: float) -> bool:
    """Should ``sched`` fire at ``now``? The first time it is seen, then every
    ``periodicBuildTimer`` seconds after it last fired."""
    return last_fired is None or now >= float(last_fired) + sched.periodicBuildTimer


def next_periodic_fire(sched: Periodic, last_fired: Any, now: float) -> float:
    """When ``tick`` will fire ``sched`` next: ``now`` when it is due."""
    if periodic_due(sched, last_fired, now):
        return now
    return float(last_fired) + sched.periodicBuildTimer


def nightly_minute_key(local: datetime.datetime) -> str:
    """The local minute a Nightly fired in, as stored in its ``LAST_FIRED`` row."""
    return local.strftime("%Y-%m-%dT%H:%M")


def nightly_due(sched: Nightly, last_fired: Any, now: float) -> bool:
    """Should ``sched`` fire at ``now``? When the local minute matches its schedule and it
    has not fired in that minute yet (so a clock turned back an hour does not fire twice)."""
    local = datetime.datetime.fromtimestamp(now)
    return sched.matches(local) and last_fired != nightly_minute_key(local)


def _cron_minutes(sched: Nightly, start: datetime.datetime) -> Iterator[datetime.datetime]:
    """The local minutes on ``sched``'s schedule from ``start`` (a whole minute) on, in
    order, for at most ``_SEARCH_YEARS`` years: month by month, then the matching days
    (day of month and day of week, 0 = Monday, must both match, as in ``matches``), hours
    and minutes. Cheap even for schedules that rarely or never match (31 February)."""
    hours = sorted(sched.hour) if sched.hour is not None else range(24)
    minutes = sorted(sched.minute) if sched.minute is not None else range(60)
    year, month = start.year, start.month
    for _ in range(12 * _SEARCH_YEARS + 1):
        if sched.month is None or month in sched.month:
            first = start.day if (year, month) == (start.year, start.month) else 1
            for day in range(first, calendar.monthrange(year, month)[1] + 1):
                if sched.dayOfMonth is not None and day not in sched.dayOfMonth:
                    continue
                if (sched.dayOfWeek is not None
                        and datetime.date(year, month, day).weekday() not in sched.dayOfWeek):
                    continue
                for hour in hours:
                    for minute in minutes:
                        when = datetime.datetime(year, month, day, hour, minute)
                        if when >= start:
                            yield when
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def next_nightly_fire(sched: Nightly, last_fired: Any, now: float) -> float | None:
    """When ``tick`` will fire ``sched`` next (the start of that local minute; ``now``
    when it is due), or None when its schedule has no time in the next 50 years.

    ``onlyIfChanged`` is not considered: at that time the scheduler runs, and builds
    only if important changes arrived by then. Daylight saving is what ``tick`` makes of
    it: local minutes that the change skips never come; those of a repeated hour come
    twice and fire twice, except a minute whose first occurrence was the last firing.
    Local time can run backwards, so the earliest time is taken among the candidates up
    to ``_MAX_CLOCK_STEP`` of local time either side of the first one found."""
    if nightly_due(sched, last_fired, now):
        return now
    local_now = datetime.datetime.fromtimestamp(now).replace(second=0, microsecond=0)
    best: float | None = None
    best_local = local_now
    for local in _cron_minutes(sched, local_now - _MAX_CLOCK_STEP):
        if best is not None and local > best_local + _MAX_CLOCK_STEP:
            break
        if nightly_minute_key(local) == last_fired:
            continue  # nothing fires before it, so the key is still the last one then
        for fold in (0, 1):
            ts = local.replace(fold=fold).timestamp()
            back = datetime.datetime.fromtimestamp(ts).replace(second=0, microsecond=0)
            if back == local and ts > now and (best is None or ts < best):
                best, best_local = ts, local
    return best
