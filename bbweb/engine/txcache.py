"""What one write transaction may remember until it ends.

A transaction that stores many changes (a push of several commits, the change-hook
requests stored together) asks the same questions for each: the builders' row ids, and
whether a scheduler has changes waiting. The answers cannot change under it in ways that
matter (builder rows keep their ids; only this transaction's own writes change what a
scheduler has waiting, and it notes those), so each is read once per transaction. The
memory is dropped with the transaction, committed or rolled back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

_KEY = "bbweb.txcache"


def of(conn: Connection) -> dict[Any, Any]:
    """The memory of ``conn``'s current transaction (a fresh, unshared dict outside one)."""
    transaction = conn.get_transaction()
    if transaction is None:
        return {}
    entry = conn.info.get(_KEY)
    # the transaction object itself is kept (not its id), so a later transaction can
    # never be taken for it
    if entry is None or entry[0] is not transaction:
        entry = conn.info[_KEY] = (transaction, {})
    return entry[1]
