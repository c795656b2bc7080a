"""How long a build will probably take: the mean duration of the builder's recent
successful builds. Pages turn it into an ETA for running builds.

Only the builder's newest ``WINDOW`` builds are looked at (an index range on
``(builderid, number)``), so the cost is the same at any history size.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import builds
from bbweb.status import batching
from bbweb.status.records import BuilderInfo
from bbweb.values.results import SUCCESS, WARNINGS

WINDOW = 20  # newest builds considered per builder
SAMPLE = 5  # successful builds averaged


def expected_durations(conn: Connection, builder_list: Iterable[BuilderInfo]
                       ) -> dict[int, float]:
    """builderid -> expected build duration in seconds, for builders with at least one
    successful (or warnings) build among their newest ``WINDOW``. One query (per
    :data:`~bbweb.status.batching.GROUP` builders)."""
    blist = [b for b in builder_list if b.next_number > 0]
    if not blist:
        return {}
    query = (sa.select(builds.c.builderid, builds.c.started_at, builds.c.finished_at,
                       builds.c.results)
             .order_by(builds.c.builderid, builds.c.number.desc()))
    rows = batching.rows_matching_any(
        conn, batching.number_windows((b.id, b.next_number - WINDOW) for b in blist),
        query.where)
    samples: dict[int, list[float]] = {}
    for r in rows:
        if r.finished_at is None or r.results not in (SUCCESS, WARNINGS):
            continue
        got = samples.setdefault(r.builderid, [])
        if len(got) < SAMPLE:
            got.append(max(r.finished_at - r.started_at, 0.0))
    return {bid: sum(v) / len(v) for bid, v in samples.items() if v}


def eta_seconds(expected: float | None, started_at: float, now: float) -> float | None:
    """Seconds until a build started at ``started_at`` should finish (0 when overdue), or
    None without an estimate."""
    if expected is None:
        return None
    return max(started_at + expected - now, 0.0)
