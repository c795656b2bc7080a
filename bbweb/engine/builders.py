"""Builder rows: the database's view of the builders master.cfg defines."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bbweb.db.schema import builders
from bbweb.engine import events
from bbweb.mastercfg.master import MasterConfig


def sync_builders(conn: Connection, cfg: MasterConfig) -> dict[str, int]:
    """Make the builders table match the configuration (insert new, update category and
    builddir, mark removed ones inactive) and return name -> id.

    History of removed builders is kept: they only become inactive. Each difference is
    also an event (``builder.created`` / ``builder.updated`` / ``builder.removed``), which
    the waterfall shows with ``show_events=true`` as 0.8 showed its reconfig events.
    """
    existing = {r.name: r for r in conn.execute(sa.select(builders)).all()}
    for name, bc in cfg.builders.items():
        row = existing.get(name)
        if row is None:
            conn.execute(builders.insert().values(name=name, category=bc.category,
                                                  builddir=bc.builddir, next_number=0,
                                                  active=True))
            events.emit(conn, "builder.created", builder=name)
        elif (row.category, row.builddir, row.active) != (bc.category, bc.builddir, True):
            conn.execute(builders.update().where(builders.c.id == row.id)
                         .values(category=bc.category, builddir=bc.builddir, active=True))
            events.emit(conn, "builder.updated", builder=name)
    for name, row in existing.items():
        if name not in cfg.builders and row.active:
            conn.execute(builders.update().where(builders.c.id == row.id).values(active=False))
            events.emit(conn, "builder.removed", builder=name)
    return builder_ids(conn, cfg)


_SELECT_IDS = sa.select(builders.c.name, builders.c.id)


def builder_ids(conn: Connection, cfg: MasterConfig | None = None) -> dict[str, int]:
    """name -> id for every builder row (configured or not)."""
    return {r.name: r.id for r in conn.execute(_SELECT_IDS)}
