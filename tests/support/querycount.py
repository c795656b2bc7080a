"""Counting the SQL statements a request issues, to show a page's queries do not grow
with history."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa


@contextlib.contextmanager
def counting(app: Any) -> Iterator[list[str]]:
    """Collect the statements run on ``app``'s database inside the block (transaction
    control excluded)."""
    engine = app.extensions["bbweb"].db.engine
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)


@contextlib.contextmanager
def checkouts(app: Any) -> Iterator[list[int]]:
    """Count the connections ``app`` takes from its pool inside the block (one per
    transaction): on PostgreSQL each costs a ping and a BEGIN/COMMIT round trip."""
    engine = app.extensions["bbweb"].db.engine
    taken: list[int] = []

    def checkout(dbapi_connection, record, proxy):  # noqa: ARG001
        taken.append(1)

    sa.event.listen(engine, "checkout", checkout)
    try:
        yield taken
    finally:
        sa.event.remove(engine, "checkout", checkout)
