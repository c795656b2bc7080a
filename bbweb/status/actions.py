"""The read side of control actions: who paused, pinged, cancelled or shut down what, for
the pages that show it. Each function is one small indexed query."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import buildrequests, master_state, slaves
from bbweb.status.records import BuilderInfo, BuildInfo, BuildRequestInfo, SlaveInfo

CLEAN_SHUTDOWN = "clean_shutdown"


@dataclass
class SlaveActions:
    """What was asked of a worker from the web, and its ping's fate."""

    name: str
    paused_by: str | None = None
    paused_at: float | None = None
    graceful_by: str | None = None
    graceful_at: float | None = None
    ping_requested_at: float | None = None
    ping_requested_by: str | None = None
    ping_answered_at: float | None = None

    @property
    def ping_round_trip(self) -> float | None:
        if self.ping_requested_at is None or self.ping_answered_at is None:
            return None
        return max(self.ping_answered_at - self.ping_requested_at, 0.0)


@dataclass
class CancelledRequest:
    id: int
    submitted_at: float
    cancelled_at: float
    cancelled_by: str | None
    reason: str | None


@dataclass
class CleanShutdown:
    by: str | None
    at: float | None
    reason: str


def slave_actions(conn: Connection, names: Iterable[str]) -> dict[str, SlaveActions]:
    """name -> :class:`SlaveActions` (workers that never connected have no row: absent)."""
    wanted = list(names)
    if not wanted:
        return {}
    cols = [slaves.c.name, slaves.c.paused_by, slaves.c.paused_at, slaves.c.graceful_by,
            slaves.c.graceful_at, slaves.c.ping_requested_at, slaves.c.ping_requested_by,
            slaves.c.ping_answered_at]
    return {r.name: SlaveActions(**r._mapping) for r in conn.execute(
        sa.select(*cols).where(slaves.c.name.in_(wanted)))}


def recent_cancellations(conn: Connection, builderid: int, limit: int = 5
                         ) -> list[CancelledRequest]:
    """The builder's most recently cancelled requests (by the cancellation index)."""
    if builderid < 0:
        return []
    rows = conn.execute(
        sa.select(buildrequests.c.id, buildrequests.c.submitted_at,
                  buildrequests.c.cancelled_at, buildrequests.c.cancelled_by,
                  buildrequests.c.cancel_reason)
        .where(buildrequests.c.builderid == builderid,
               buildrequests.c.cancelled_at.isnot(None))
        .order_by(buildrequests.c.cancelled_at.desc()).limit(limit)).all()
    return [CancelledRequest(r.id, r.submitted_at, r.cancelled_at, r.cancelled_by,
                             r.cancel_reason) for r in rows]


def clean_shutdown(conn: Connection) -> CleanShutdown | None:
    """The pending clean shutdown of the master, if any."""
    row = conn.execute(sa.select(master_state)
                       .where(master_state.c.name == CLEAN_SHUTDOWN)).first()
    if row is None:
        return None
    try:
        value = json.loads(row.value)
    except ValueError:
        value = {}
    reason = value.get("reason", "") if isinstance(value, dict) else ""
    return CleanShutdown(row.set_by, row.set_at, str(reason or ""))




# -- what an Authz function receives (0.8's status objects had getters) ---------------------


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def getName(self) -> str:
        return self.name


class BuilderStatus(BuilderInfo):
    """A builder record with 0.8's ``getName()`` (for ``forceBuild``/``pingBuilder``)."""

    def getName(self) -> str:
        return self.name


class BuildStatus(BuildInfo):
    """A build record with 0.8's getters (for ``stopBuild``)."""

    def getNumber(self) -> int:
        return self.number

    def getBuilder(self) -> _Named:
        return _Named(self.builder)

    def getReason(self) -> str:
        return self.reason

    def getSlavename(self) -> str | None:
        return self.slave


class BuildRequestStatus(BuildRequestInfo):
    """A pending request with 0.8's getters (for ``cancelPendingBuild``/``stopChange``)."""

    def getBuilderName(self) -> str:
        return self.builder

    def getSubmitTime(self) -> float:
        return self.submitted_at


class SlaveStatus(SlaveInfo):
    """A slave record with 0.8's ``getName()`` (for ``gracefulShutdown``/``pauseSlave``)."""

    def getName(self) -> str:
        return self.name

    def isPaused(self) -> bool:
        return self.paused

    def isConnected(self) -> bool:
        return self.connected


def as_status(record: object) -> object:
    """The same record with 0.8's getters, for a configured Authz function."""
    import dataclasses

    for base, cls in ((BuilderInfo, BuilderStatus), (BuildInfo, BuildStatus),
                      (BuildRequestInfo, BuildRequestStatus), (SlaveInfo, SlaveStatus)):
        if type(record) is base:
            return cls(**{f.name: getattr(record, f.name)
                          for f in dataclasses.fields(base)})
    return record


__all__ = ["BuildRequestStatus", "BuildStatus", "BuilderStatus", "CancelledRequest",
           "CleanShutdown", "SlaveActions", "SlaveStatus", "as_status", "clean_shutdown",
           "recent_cancellations", "slave_actions"]
