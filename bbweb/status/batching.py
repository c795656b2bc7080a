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

import functools
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


@functools.lru_cache(maxsize=64)
def _in_windows(query: sa.Select[Any], n: int) -> sa.Select[Any]:
    """``query`` over ``n`` windows, their bounds left as parameters. Building a statement
    of a few hundred terms (and its cache key) costs more than running it, so it is built
    once per query and group size (a memo of immutable statements, ``query`` being a
    module-level constant)."""
    return query.where(sa.or_(*(sa.and_(builds.c.builderid == sa.bindparam(f"w_builder_{i}"),
                                        builds.c.number >= sa.bindparam(f"w_lowest_{i}"))
                                for i in range(n))))


def rows_in_windows(conn: Connection, windows: Iterable[tuple[int, int]],
                    query: sa.Select[Any]) -> list[Any]:
    """The rows of ``query`` over the :func:`number_windows` of ``windows`` ((builderid,
    lowest number) pairs), as :func:`rows_matching_any` reads them, with the statements
    built once (``query`` must be a module-level constant)."""
    rows: list[Any] = []
    for group in groups(sorted(windows)):
        params: dict[str, int] = {}
        for i, (bid, lowest) in enumerate(group):
            params[f"w_builder_{i}"] = bid
            params[f"w_lowest_{i}"] = lowest
        rows.extend(conn.execute(_in_windows(query, len(group)), params).all())
    return rows
