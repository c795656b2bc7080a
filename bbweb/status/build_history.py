"""Read queries about a build's neighbours that notifiers decide with: the build that
came before it, and the builds of one buildset.

Both answer "as of when the build finished", so a notifier that handles an event late
(after a restart or an outage) decides exactly what it would have decided at the time.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import buildrequests, builds, sourcestamps


def previous_finished_build_id(conn: Connection, builderid: int, number: int,
                               finished_at: float | None) -> int | None:
    """The newest build of the builder numbered below ``number`` that had finished by
    ``finished_at`` (by now, when None). A build still running then is passed over, so
    overlapping builds compare with the last result the builder had."""
    query = sa.select(builds.c.id).where(builds.c.builderid == builderid,
                                         builds.c.number < number,
                                         builds.c.finished_at.isnot(None))
    if finished_at is not None:
        query = query.where(builds.c.finished_at <= finished_at)
    return conn.execute(query.order_by(builds.c.number.desc()).limit(1)).scalar()


def buildset_build_ids(conn: Connection, buildsetid: int) -> list[int]:
    """Every build run for the requests of a buildset, retried ones included, in the
    order they started."""
    return [i for (i,) in conn.execute(
        sa.select(builds.c.id).join(buildrequests, buildrequests.c.id == builds.c.buildrequestid)
        .where(buildrequests.c.buildsetid == buildsetid).order_by(builds.c.id))]


def patch_body(conn: Connection, sourcestampid: int) -> bytes | None:
    """A source stamp's patch exactly as stored (bytes; binary patches included)."""
    body = conn.execute(sa.select(sourcestamps.c.patch_body)
                        .where(sourcestamps.c.id == sourcestampid)).scalar()
    if body is None:
        return None
    return body.tobytes() if isinstance(body, memoryview) else bytes(body)
