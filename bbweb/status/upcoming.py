"""Upcoming scheduled builds: when the timed schedulers (``Nightly``, ``Periodic``) that
feed a builder will fire next.

The prediction is the daemon's own rule (:func:`bbweb.mastercfg.firing.next_nightly_fire`
and :func:`~bbweb.mastercfg.firing.next_periodic_fire`, which ``tick`` uses too) applied to
the same ``scheduler_state`` rows, so a page never promises a time the daemon would not
keep. Cost: one query over those rows, for the timed schedulers of the shown builders,
whatever the history; none when no timed scheduler feeds them.

Known limits, said here so pages can say them: a ``Nightly`` with ``onlyIfChanged`` is
listed at its next time although it builds then only if important changes arrived; a
``Periodic`` the daemon has not seen yet (or one overdue because the daemon is stopped)
is due now.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import scheduler_state
from bbweb.mastercfg.firing import LAST_FIRED, next_nightly_fire, next_periodic_fire
from bbweb.mastercfg.master import MasterConfig
from bbweb.mastercfg.schedulers import Nightly, Periodic
from bbweb.status.records import BuilderSummary


@dataclass(frozen=True)
class Upcoming:
    """A scheduled build time of a builder."""

    scheduler: str
    at: float  # when (epoch seconds)
    seconds: float  # from the page's "now", >= 0


def _last_fired(conn: Connection, names: list[str]) -> dict[str, Any]:
    if not names:
        return {}
    out: dict[str, Any] = {}
    for r in conn.execute(sa.select(scheduler_state.c.scheduler, scheduler_state.c.value)
                          .where(scheduler_state.c.name == LAST_FIRED,
                                 scheduler_state.c.scheduler.in_(sorted(names)))):
        try:
            out[r.scheduler] = json.loads(r.value)
        except ValueError:
            continue  # as if never fired: tick would fire it and rewrite the row
    return out


def upcoming_builds(conn: Connection, cfg: MasterConfig, names: Iterable[str],
                    now: float | None = None) -> dict[str, list[Upcoming]]:
    """builder name -> its upcoming scheduled builds, soonest first, for the builders
    ``names`` (those with none are left out). One query, none without timed schedulers."""
    now = time.time() if now is None else now
    wanted = set(names)
    timed = [s for s in cfg.schedulers.values()
             if isinstance(s, Nightly | Periodic) and wanted.intersection(s.builderNames)]
    if not timed:
        return {}
    state = _last_fired(conn, [s.name for s in timed])
    out: dict[str, list[Upcoming]] = {}
    for sched in timed:
        last = state.get(sched.name)
        at = (next_nightly_fire(sched, last, now) if isinstance(sched, Nightly)
              else next_periodic_fire(sched, last, now))
        if at is None:
            continue
        item = Upcoming(sched.name, at, max(at - now, 0.0))
        for name in dict.fromkeys(sched.builderNames):
            if name in wanted:
                out.setdefault(name, []).append(item)
    for items in out.values():
        items.sort(key=lambda u: (u.at, u.scheduler))
    return out


def with_waiting(summaries: Mapping[str, BuilderSummary],
                 upcoming: Mapping[str, list[Upcoming]]) -> dict[str, BuilderSummary]:
    """The summaries with state ``waiting`` for idle builders (no running build, a slave
    connected) that have an upcoming scheduled build; others unchanged."""
    return {name: (dataclasses.replace(s, state="waiting")
                   if s.state == "idle" and upcoming.get(name) else s)
            for name, s in summaries.items()}


__all__ = ["Upcoming", "upcoming_builds", "with_waiting"]
