"""Turning scheduler decisions into buildsets.

Immediate schedulers act inside the transaction that stores the change (``on_new_change``).
Schedulers with a ``treeStableTimer`` and ``Nightly`` record what they have seen in
``scheduler_changes`` and act when the daemon calls :func:`tick`, so any web process may
accept the change and exactly one daemon fires the timer.
"""

from __future__ import annotations

import datetime
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import scheduler_changes, scheduler_state
from bbweb.engine import txcache
from bbweb.engine.buildsets import (
    BuildsetPlan,
    SourceStampPlan,
    create_buildset,
    create_buildsets,
    create_sourcestamp,
)
from bbweb.engine.change_rows import load_changes
from bbweb.mastercfg.firing import LAST_FIRED, nightly_due, nightly_minute_key, periodic_due
from bbweb.mastercfg.master import MasterConfig
from bbweb.mastercfg.schedulers import BaseScheduler, Nightly, Periodic, _ChangeScheduler


def _scheduler_properties(sched: BaseScheduler) -> dict[str, tuple[Any, str]]:
    props = {k: (v, "Scheduler") for k, v in sched.properties.items()}
    props["scheduler"] = (sched.name, "Scheduler")
    return props


def buildset_for_changes(conn: Connection, cfg: MasterConfig, sched: BaseScheduler,
                         change_list: list[dict[str, Any]], now: float) -> int:
    """One sourcestamp per codebase, at the newest change's revision, and a buildset for
    the scheduler's builders."""
    return create_buildsets(conn, cfg, [_plan(sched, change_list)], now)[0]


def _plan(sched: BaseScheduler, change_list: list[dict[str, Any]]) -> BuildsetPlan:
    by_codebase: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ch in sorted(change_list, key=lambda c: c["changeid"]):
        by_codebase[ch.get("codebase") or ""].append(ch)
    stamps = []
    for codebase, chs in sorted(by_codebase.items()):
        last = chs[-1]
        stamps.append(SourceStampPlan(
            branch=last["branch"], revision=last["revision"],
            repository=last["repository"], project=last["project"], codebase=codebase,
            changeids=[c["changeid"] for c in chs]))
    reason = sched.reason or (f"The {type(sched).__name__} scheduler named "
                              f"'{sched.name}' triggered this build")
    return BuildsetPlan(sourcestamps=stamps, builder_names=sched.builderNames, reason=reason,
                        scheduler=sched.name, properties=_scheduler_properties(sched))


def on_new_change(conn: Connection, cfg: MasterConfig, change: dict[str, Any],
                  now: float | None = None) -> list[int]:
    """Let every change-driven scheduler see a new change; returns buildsets created."""
    return on_new_changes(conn, cfg, [change], now)


def on_new_changes(conn: Connection, cfg: MasterConfig, new: list[dict[str, Any]],
                   now: float | None = None) -> list[int]:
    """Let every change-driven scheduler see each new change in turn, as if each had come
    alone; returns the buildsets created. What the schedulers decide for one change
    depends on what they keep waiting from the earlier ones, never on the buildsets those
    made, so the buildsets are stored together once all are decided (one statement per
    table, :func:`~bbweb.engine.buildsets.create_buildsets`), in the order decided."""
    now = time.time() if now is None else now
    plans: list[BuildsetPlan] = []
    for change in new:
        for sched in cfg.schedulers.values():
            if isinstance(sched, Nightly):
                if sched.onlyIfChanged and sched.wants_change(change):
                    important = sched.fileIsImportant is None or bool(
                        sched.fileIsImportant(_View(change)))
                    _record(conn, sched.name, change["changeid"], important, now)
                continue
            if not isinstance(sched, _ChangeScheduler) or not sched.wants_change(change):
                continue
            important = sched.is_important(change)
            if sched.treeStableTimer:
                _record(conn, sched.name, change["changeid"], important, now)
                continue
            if not important:
                # kept until an important change arrives; built together with it
                _record(conn, sched.name, change["changeid"], False, now)
                continue
            key = sched.group_key(change)
            waiting = [c for c in _recorded_changes(conn, sched.name)
                       if sched.group_key(c) == key]
            plans.append(_plan(sched, waiting + [change]))
            _forget(conn, sched.name, [c["changeid"] for c in waiting])
    return create_buildsets(conn, cfg, plans, now)


_INSERT_RECORDED = scheduler_changes.insert()
# the transaction's memory (txcache) of the schedulers with changes recorded
_SCHEDULERS_WAITING = "schedulers with changes waiting"
_SELECT_WAITING = sa.select(scheduler_changes.c.scheduler).distinct()
_SELECT_RECORDED = (sa.select(scheduler_changes)
                    .where(scheduler_changes.c.scheduler == sa.bindparam("scheduler"))
                    .order_by(scheduler_changes.c.changeid))
_DELETE_RECORDED = scheduler_changes.delete().where(
    scheduler_changes.c.scheduler == sa.bindparam("scheduler"),
    scheduler_changes.c.changeid.in_(sa.bindparam("changeids", expanding=True)))


class _View:
    def __init__(self, change: dict[str, Any]) -> None:
        self.__dict__.update(change)


def _record(conn: Connection, scheduler: str, changeid: int, important: bool,
            now: float) -> None:
    waiting = txcache.of(conn).get(_SCHEDULERS_WAITING)
    if waiting is not None:
        waiting.add(scheduler)
    conn.execute(_INSERT_RECORDED, {"scheduler": scheduler, "changeid": changeid,
                                    "important": important, "added_at": now})


def _recorded(conn: Connection, scheduler: str) -> Sequence[sa.Row[Any]]:
    return conn.execute(_SELECT_RECORDED, {"scheduler": scheduler}).all()


def _recorded_changes(conn: Connection, scheduler: str) -> list[dict[str, Any]]:
    """The changes ``scheduler`` has waiting. Which schedulers have any is read once per
    transaction (one query, whatever the number of schedulers and changes) and kept up to
    date by the transaction's own :func:`_record`: a push of many commits, or many hook
    requests stored together, do not ask each scheduler in turn."""
    memory = txcache.of(conn)
    waiting = memory.get(_SCHEDULERS_WAITING)
    if waiting is None:
        waiting = memory[_SCHEDULERS_WAITING] = set(conn.execute(_SELECT_WAITING).scalars())
    if scheduler not in waiting:
        return []
    return load_changes(conn, [r.changeid for r in _recorded(conn, scheduler)])


def _forget(conn: Connection, scheduler: str, changeids: list[int]) -> None:
    if changeids:
        conn.execute(_DELETE_RECORDED, {"scheduler": scheduler, "changeids": changeids})


def _get_state(conn: Connection, scheduler: str, name: str, default: Any = None) -> Any:
    value = conn.execute(sa.select(scheduler_state.c.value).where(
        scheduler_state.c.scheduler == scheduler, scheduler_state.c.name == name)).scalar()
    return default if value is None else json.loads(value)


def _set_state(conn: Connection, scheduler: str, name: str, value: Any) -> None:
    updated = conn.execute(scheduler_state.update().where(
        scheduler_state.c.scheduler == scheduler, scheduler_state.c.name == name,
    ).values(value=json.dumps(value))).rowcount
    if not updated:
        conn.execute(scheduler_state.insert().values(scheduler=scheduler, name=name,
                                                     value=json.dumps(value)))


def tick(conn: Connection, cfg: MasterConfig, now: float | None = None) -> list[int]:
    """Fire due timers: stable trees and nightly schedules. Called by the daemon about
    once a second; returns the buildsets created. Also the earliest future deadline is
    cheap to recompute, so nothing is cached between calls."""
    now = time.time() if now is None else now
    created: list[int] = []
    for sched in cfg.schedulers.values():
        if isinstance(sched, _ChangeScheduler) and sched.treeStableTimer:
            created.extend(_tick_tree_stable(conn, cfg, sched, now))
        elif isinstance(sched, Nightly):
            bsid = _tick_nightly(conn, cfg, sched, now)
            if bsid is not None:
                created.append(bsid)
        elif isinstance(sched, Periodic):
            bsid = _tick_periodic(conn, cfg, sched, now)
            if bsid is not None:
                created.append(bsid)
    return created


def _tick_periodic(conn: Connection, cfg: MasterConfig, sched: Periodic,
                   now: float) -> int | None:
    if not periodic_due(sched, _get_state(conn, sched.name, LAST_FIRED), now):
        return None
    _set_state(conn, sched.name, LAST_FIRED, now)
    return _timed_buildset(conn, cfg, sched, sched.branch, now)


def _timed_buildset(conn: Connection, cfg: MasterConfig, sched: BaseScheduler,
                    branch: str | None, now: float) -> int:
    ssid = create_sourcestamp(conn, branch=branch)
    reason = sched.reason or (f"The {type(sched).__name__} scheduler named "
                              f"'{sched.name}' triggered this build")
    bsid, _ = create_buildset(conn, cfg, sourcestampids=[ssid],
                              builder_names=sched.builderNames, reason=reason,
                              scheduler=sched.name, properties=_scheduler_properties(sched),
                              now=now)
    return bsid


def _tick_tree_stable(conn: Connection, cfg: MasterConfig, sched: _ChangeScheduler,
                      now: float) -> list[int]:
    rows = _recorded(conn, sched.name)
    if not rows:
        return []
    arrived = {r.changeid: (r.added_at, r.important) for r in rows}
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for ch in load_changes(conn, list(arrived)):
        groups[sched.group_key(ch)].append(ch)
    created = []
    for chs in groups.values():
        last_arrival = max(arrived[c["changeid"]][0] for c in chs)
        if now < last_arrival + (sched.treeStableTimer or 0):
            continue
        if not any(arrived[c["changeid"]][1] for c in chs):
            continue  # only unimportant changes: keep waiting for an important one
        created.append(buildset_for_changes(conn, cfg, sched, chs, now))
        _forget(conn, sched.name, [c["changeid"] for c in chs])
    return created


def _tick_nightly(conn: Connection, cfg: MasterConfig, sched: Nightly,
                  now: float) -> int | None:
    if not sched.matches(datetime.datetime.fromtimestamp(now)):
        return None  # the common case: no state read
    if not nightly_due(sched, _get_state(conn, sched.name, LAST_FIRED), now):
        return None
    _set_state(conn, sched.name, LAST_FIRED,
               nightly_minute_key(datetime.datetime.fromtimestamp(now)))
    if sched.onlyIfChanged:
        rows = _recorded(conn, sched.name)
        if not any(r.important for r in rows):
            return None
        chs = load_changes(conn, [r.changeid for r in rows])
        _forget(conn, sched.name, [r.changeid for r in rows])
        return buildset_for_changes(conn, cfg, sched, chs, now)
    return _timed_buildset(conn, cfg, sched, sched.branch, now)
