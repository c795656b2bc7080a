"""Statements over many builders, split into groups that every database accepts.

The overview queries read a few builds of every builder with one condition per builder,
``builderid = X AND number >= Y OR builderid = Z AND …``, because each term is then an
index range scan on ``(builderid, number)`` (a join on ``builders.next_number`` makes
PostgreSQL read the whole table). SQLite parses such an ``OR`` into an expression tree
one level deeper per term and refuses more than 1,000 levels ("Expression tree is too
large"); it also refuses a compound ``SELECT`` of more than 500 parts. So these queries
run one statement per :data:`GROUP` builders: a site with up to ``GROUP`` builders gets
exactly the one statement it always had, a bigger one a statement per further group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Executable

from bbweb.db.schema import builds

GROUP = 200  # builders (terms, or UNION ALL parts) per statement

T = TypeVar("T")


def groups(items: Sequence[T], size: int = GROUP) -> list[Sequence[T]]:
    """``items`` cut into consecutive slices of at most ``size``, in order."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def number_windows(windows: Iterable[tuple[int, int]]) -> list[sa.ColumnElement[bool]]:
    """One term per ``(builderid, lowest number)``: that builder's builds numbered
    ``lowest`` and up, an index range on ``(builderid, number)``. Sorted by builder id,
    so that groups run in turn return rows in the order one ``ORDER BY builderid``
    statement over all of them would."""
    return [sa.and_(builds.c.builderid == bid, builds.c.number >= lowest)
            for bid, lowest in sorted(windows)]


def rows_matching_any(conn: Connection, terms: Sequence[sa.ColumnElement[bool]],
                      statement: Callable[[sa.ColumnElement[bool]], Executable]
                      ) -> list[Any]:
    """The rows of ``statement(t1 OR t2 OR …)`` over all ``terms``: ``statement`` is run
    once per group of at most :data:`GROUP` terms (once for a normal site) and the rows
    are concatenated in group order. ``statement`` must not itself combine rows of
    different groups (no overall ``LIMIT`` or aggregate across builders)."""
    rows: list[Any] = []
    for group in groups(terms):
        rows.extend(conn.execute(statement(sa.or_(*group))).all())
    return rows
